// The load generator against a real llama-chat-server (the in-process ChatServer: gRPC service, validation, engine
// loop, metrics) whose backend is the FakeBackend test double, so every step is fast and every output length is
// known: exact token and status counts (cross-checked against the server's own Prometheus counters), a full queue
// as RESOURCE_EXHAUSTED counts, a refused field as INVALID_ARGUMENT counts, a server that is down as UNAVAILABLE
// counts with a clear message, the open loop's arrival rate, and the `llama-chat load` binary as a separate process
// writing JSON and SVG. Needs models/stories15M/tokenizer.model (the tokenizer only); skips without it.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/chat_server.h"
#include "tests/server/e2e_helpers.h"
#include "tests/support/fake_backend.h"
#include "tools/load/load_report.h"
#include "tools/load/load_run.h"

namespace llama::load {
namespace {

using ::llama::server::testing::HaveModel;
using ::llama::server::testing::MetricValue;
using ::llama::server::testing::ModelDir;
using ::testing::HasSubstr;

std::unique_ptr<server::ChatServer> StartFakeServer(testing::FakeBackendOptions fake,
                                                    server::ChatServerOptions options = {}) {
  options.model_path = ModelDir();  // the tokenizer; the weights are never loaded
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  auto server = server::ChatServer::StartWithBackend(options, std::make_unique<testing::FakeBackend>(fake));
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  const absl::Status warm = (*server)->Warmup();
  EXPECT_TRUE(warm.ok()) << warm;
  return std::move(*server);
}

LoadOptions FixedLengths(int port, int input_tokens, int output_tokens, int num_requests) {
  LoadOptions o;
  o.server = absl::StrCat("127.0.0.1:", port);
  o.input_tokens = input_tokens;
  o.output_tokens = output_tokens;
  o.num_requests = {num_requests};
  o.timeout_s = 60;
  return o;
}

// A port nothing listens on: bound by the OS, then closed.
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

class LoadGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveModel()) GTEST_SKIP() << "models/stories15M missing (its tokenizer is used): run scripts/fetch-model.sh";
  }
};

TEST_F(LoadGeneratorTest, ExactTokenAndStatusCountsOverASweep) {
  testing::FakeBackendOptions fake;
  fake.eos_one_in = 5;  // EOS is frequent: only ignore_eos makes every length exact
  std::unique_ptr<server::ChatServer> server = StartFakeServer(fake);
  ASSERT_NE(server, nullptr);
  const double tokens_before = MetricValue(server->metrics(), "llama_chat_generation_tokens_total");
  LoadOptions o = FixedLengths(server->port(), 24, 16, 12);
  o.concurrency = {1, 4};
  o.num_requests = {6, 12};  // one count per level
  o.include_token_ids = true;
  o.warmup = 2;
  absl::StatusOr<LoadResult> result = RunLoad(o, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->server.reachable);
  EXPECT_EQ(result->server.context_length, 256);
  EXPECT_TRUE(result->prompts.exact_prompt_lengths);
  ASSERT_EQ(result->levels.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const LevelSummary& level = result->levels[i];
    const int n = o.num_requests[i];
    EXPECT_EQ(level.num_requests, n) << level.name;
    EXPECT_EQ(level.num_ok, n);
    EXPECT_TRUE(level.errors.empty());
    EXPECT_EQ(level.output_tokens, n * 16);
    EXPECT_EQ(level.prompt_tokens, n * 24);  // the server's own count of the prompts (Final's usage)
    EXPECT_EQ(level.finish_reasons.at("length"), n);
    EXPECT_EQ(level.token_id_mismatches, 0);
    EXPECT_EQ(level.ttft_ms.count, n);
    EXPECT_EQ(level.tpot_ms.count, n);
    EXPECT_GT(level.output_throughput, 0);
  }
  EXPECT_EQ(result->levels[0].concurrency, 1);
  EXPECT_EQ(result->levels[1].concurrency, 4);
  // What the server counted: both levels and both warm-ups (2 × 2 requests), 16 tokens each.
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_generation_tokens_total") - tokens_before, (6 + 12 + 4) * 16);
}

TEST_F(LoadGeneratorTest, WithoutIgnoreEosRepliesStopEarly) {
  testing::FakeBackendOptions fake;
  fake.eos_one_in = 5;
  std::unique_ptr<server::ChatServer> server = StartFakeServer(fake);
  ASSERT_NE(server, nullptr);
  LoadOptions o = FixedLengths(server->port(), 24, 16, 12);
  o.ignore_eos = false;
  absl::StatusOr<LoadResult> result = RunLoad(o, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const LevelSummary& level = result->levels.at(0);
  EXPECT_EQ(level.num_ok, 12);
  EXPECT_GT(level.finish_reasons.count("stop") ? level.finish_reasons.at("stop") : 0, 0);
  EXPECT_LT(level.output_tokens, 12 * 16);
}

TEST_F(LoadGeneratorTest, FullQueueIsResourceExhaustedNotACrash) {
  testing::FakeBackendOptions fake;
  fake.step_latency = absl::Milliseconds(5);
  server::ChatServerOptions options;
  options.max_queue = 1;
  options.max_num_seqs = 1;
  std::unique_ptr<server::ChatServer> server = StartFakeServer(fake, options);
  ASSERT_NE(server, nullptr);
  LoadOptions o = FixedLengths(server->port(), 20, 8, 30);
  o.request_rates = {2000};  // a burst: 30 requests in ~15 ms against one running + one queued
  absl::StatusOr<LoadResult> result = RunLoad(o, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const LevelSummary& level = result->levels.at(0);
  EXPECT_EQ(level.num_requests, 30);
  ASSERT_EQ(level.errors.count("RESOURCE_EXHAUSTED"), 1u) << "no refusals";
  EXPECT_EQ(level.errors.size(), 1u);
  const int64_t refused = level.errors.at("RESOURCE_EXHAUSTED");
  EXPECT_GT(refused, 0);
  EXPECT_GE(level.num_ok, 2);
  EXPECT_EQ(level.num_ok + refused, 30);
  EXPECT_EQ(level.output_tokens, level.num_ok * 8);
  EXPECT_THAT(level.first_error.at("RESOURCE_EXHAUSTED"), HasSubstr("queue"));
  // The server's own failure count agrees with the client's.
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_request_failure_total", "code", "RESOURCE_EXHAUSTED"),
            refused);
}

TEST_F(LoadGeneratorTest, RefusedFieldIsInvalidArgument) {
  std::unique_ptr<server::ChatServer> server = StartFakeServer({});
  ASSERT_NE(server, nullptr);
  LoadOptions o = FixedLengths(server->port(), 20, 8, 5);
  o.num_candidates = 2;  // needs a reward model, which this server has not
  absl::StatusOr<LoadResult> result = RunLoad(o, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const LevelSummary& level = result->levels.at(0);
  EXPECT_EQ(level.num_ok, 0);
  EXPECT_EQ(level.errors.at("INVALID_ARGUMENT"), 5);
  EXPECT_THAT(level.first_error.at("INVALID_ARGUMENT"), HasSubstr("num_candidates"));
  EXPECT_FALSE(result->any_success());
}

TEST_F(LoadGeneratorTest, ServerDownIsUnavailableWithAClearMessage) {
  const int port = UnusedPort();
  LoadOptions o = FixedLengths(port, 20, 8, 4);
  o.concurrency = {2};
  absl::StatusOr<LoadResult> result = RunLoad(o, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->server.reachable);
  EXPECT_THAT(result->server.error, HasSubstr(absl::StrCat("127.0.0.1:", port)));
  EXPECT_THAT(result->server.error, HasSubstr("UNAVAILABLE"));
  const LevelSummary& level = result->levels.at(0);
  EXPECT_EQ(level.num_requests, 4);
  EXPECT_EQ(level.errors.at("UNAVAILABLE"), 4);
  EXPECT_FALSE(result->any_success());
}

TEST_F(LoadGeneratorTest, OpenLoopKeepsTheArrivalRate) {
  std::unique_ptr<server::ChatServer> server = StartFakeServer({});
  ASSERT_NE(server, nullptr);
  LoadOptions o = FixedLengths(server->port(), 16, 2, 200);
  o.request_rates = {100};
  o.seed = 9;
  absl::StatusOr<LoadResult> result = RunLoad(o, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const LevelSummary& level = result->levels.at(0);
  EXPECT_EQ(level.num_ok, 200);
  // 199 exponential gaps: the rate estimate's relative standard error is 1/sqrt(199) = 7%; 5 SE = 35%. (The
  // distribution itself is checked tightly in arrivals_test; this checks the dispatcher keeps to it.)
  EXPECT_NEAR(level.achieved_rate, 100, 35);
  EXPECT_EQ(level.request_rate, 100);
}

// Runs a command, returns its exit code; stdout and stderr go to files under the test's temp dir.
int RunLoadBinary(const std::string& args, std::string* out, std::string* err) {
  const std::string dir = ::testing::TempDir();
  const std::string command =
      absl::StrCat(LLAMA_BIN_DIR, "/llama-chat load ", args, " > ", dir, "/load_out.txt 2> ", dir, "/load_err.txt");
  const int status = std::system(command.c_str());
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  *out = read(dir + "/load_out.txt");
  *err = read(dir + "/load_err.txt");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(LoadGeneratorTest, SeparateProcessWritesJsonAndSvg) {
  std::unique_ptr<server::ChatServer> server = StartFakeServer({});
  ASSERT_NE(server, nullptr);
  const std::string json_path = ::testing::TempDir() + "/load.json", svg_path = ::testing::TempDir() + "/load.svg";
  std::string out, err;
  const int rc = RunLoadBinary(absl::StrCat("--server 127.0.0.1:", server->port(), " --concurrency 1,3 --input_tokens 20",
                                  " --output_tokens 10 --num_requests 6 --slo ttft_ms=60000 --json ", json_path,
                                  " --svg ", svg_path),
                     &out, &err);
  ASSERT_EQ(rc, 0) << out << err;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "a progress bar on a pipe";
  EXPECT_THAT(out, HasSubstr("== concurrency 3"));
  EXPECT_THAT(out, HasSubstr("goodput (ttft_ms=60000)"));
  absl::StatusOr<nlohmann::json> json = ReadJsonFile(json_path);
  ASSERT_TRUE(json.ok()) << json.status();
  ASSERT_EQ((*json)["levels"].size(), 2u);
  for (const nlohmann::json& level : (*json)["levels"]) {
    EXPECT_EQ(level["num_ok"], 6);
    EXPECT_EQ(level["output_tokens"], 60);
    EXPECT_EQ(level["prompt_tokens"], 120);
    EXPECT_EQ(level["good_requests"], 6);
    EXPECT_TRUE(level["ttft_ms"].contains("p99"));
  }
  EXPECT_EQ((*json)["settings"]["input_tokens"], 20);
  EXPECT_EQ((*json)["settings"]["concurrency"], nlohmann::json::array({1, 3}));
  absl::StatusOr<PlotSeries> series = SeriesFromJson(*json, PlotLatency::kE2e);
  ASSERT_TRUE(series.ok());
  EXPECT_EQ(series->points.size(), 2u);
  std::ifstream svg(svg_path);
  const std::string svg_text((std::istreambuf_iterator<char>(svg)), {});
  EXPECT_EQ(svg_text.rfind("<svg", 0), 0u);
  EXPECT_THAT(svg_text, HasSubstr(">c=3</text>"));
}

// On a terminal (a pseudo-terminal from util-linux `script`) the level's progress line is drawn and redrawn with
// carriage returns; on a pipe (the test above) there is none.
TEST_F(LoadGeneratorTest, ProgressBarOnATerminal) {
  if (std::system("command -v script > /dev/null 2>&1") != 0) GTEST_SKIP() << "no util-linux script(1)";
  testing::FakeBackendOptions fake;
  fake.step_latency = absl::Milliseconds(20);  // the level takes ~1 s: several redraws
  std::unique_ptr<server::ChatServer> server = StartFakeServer(fake);
  ASSERT_NE(server, nullptr);
  const std::string out_path = ::testing::TempDir() + "/tty_out.txt";
  const std::string command =
      absl::StrCat("script -qfec '", LLAMA_BIN_DIR, "/llama-chat load --server 127.0.0.1:", server->port(),
                   " --input_tokens 20 --output_tokens 12 --num_requests 4' /dev/null > ", out_path, " 2>&1");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out_path);
  const std::string out((std::istreambuf_iterator<char>(in)), {});
  EXPECT_THAT(out, HasSubstr("\rconcurrency 1  ["));
  EXPECT_THAT(out, HasSubstr("/4 requests"));
  EXPECT_THAT(out, HasSubstr("== concurrency 1: 4 requests, 4 ok"));
}

TEST_F(LoadGeneratorTest, DumpPromptsWritesTheRunsRequests) {
  std::unique_ptr<server::ChatServer> server = StartFakeServer({});
  ASSERT_NE(server, nullptr);
  const std::string path = ::testing::TempDir() + "/prompts.jsonl";
  std::string out, err;
  ASSERT_EQ(RunLoadBinary(absl::StrCat("--server 127.0.0.1:", server->port(), " --concurrency 1,2 --num_requests 3,4",
                                       " --input_tokens 30 --output_tokens 12 --dump_prompts ", path),
                          &out, &err),
            0)
      << out << err;
  std::ifstream in(path);
  auto stub = server::testing::Connect(server->port());
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    const nlohmann::json request = nlohmann::json::parse(line);
    EXPECT_EQ(request["output_tokens"], 12);
    ASSERT_EQ(request["messages"].size(), 1u);
    EXPECT_EQ(request["messages"][0]["content"], request["prompt"]);
    // The prompt is exactly --input_tokens as the server counts it.
    llamachat::v1::TokenizeRequest tokenize;
    llamachat::v1::Message* m = tokenize.add_messages();
    m->set_role(llamachat::v1::ROLE_USER);
    m->set_content(request["prompt"].get<std::string>());
    grpc::ClientContext context;
    llamachat::v1::TokenizeResponse ids;
    ASSERT_TRUE(stub->Tokenize(&context, tokenize, &ids).ok());
    EXPECT_EQ(ids.token_ids_size(), 30);
  }
  EXPECT_EQ(lines, 3 + 4);
}

TEST_F(LoadGeneratorTest, SeparateProcessAgainstNoServerFailsClearly) {
  std::string out, err;
  const int rc = RunLoadBinary(absl::StrCat("--server 127.0.0.1:", UnusedPort(), " --num_requests 3"), &out, &err);
  EXPECT_EQ(rc, 1);
  EXPECT_THAT(out, HasSubstr("is not reachable"));
  EXPECT_THAT(out, HasSubstr("UNAVAILABLE 3"));
  EXPECT_THAT(err, HasSubstr("no request succeeded"));
}

}  // namespace
}  // namespace llama::load
