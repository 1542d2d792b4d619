// The cancel storm (docs/reliability.md, "Cancel storm"): 200 Chat streams opened at once against an in-process
// server on the real stories15M model with the stories15M safety reward model, each cancelled by its client at a
// random point: while queued (before admission to a step), mid-prefill (a long prompt), mid-decode, during reward
// scoring (k = 4, the candidates done and not yet streamed) and mid-stream with k = 4. Afterwards, read from a real
// /metrics scrape: 0 KV blocks in use in the policy's and the reward models' pools, nothing running or waiting; the
// calls counted once each (request log: one line per request id, as many lines as the metrics' outcomes); every
// client got exactly one terminal status, OK or CANCELLED, none hung; and the server still answers.
#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/server/e2e_helpers.h"

namespace llama::server::testing {
namespace {

std::string RewardModelDir() { return std::string(LLAMA_SOURCE_DIR) + "/models/stories15M-safety-rm"; }
bool HaveRewardModel() { return HaveModel() && std::ifstream(RewardModelDir() + "/model.safetensors").good(); }

enum class CancelPoint { kQueued, kPrefill, kDecode, kScoring, kCandidatesStreaming };
constexpr int kNumPoints = 5;
const char* Name(CancelPoint p) {
  switch (p) {
    case CancelPoint::kQueued: return "queued";
    case CancelPoint::kPrefill: return "prefill";
    case CancelPoint::kDecode: return "decode";
    case CancelPoint::kScoring: return "scoring (k=4)";
    case CancelPoint::kCandidatesStreaming: return "streaming (k=4)";
  }
  return "?";
}

struct StormStream {
  CancelPoint point = CancelPoint::kQueued;
  int num_statuses = 0;   // terminal statuses the client saw (ClientReader::Finish calls that returned)
  grpc::Status status;
  int num_deltas = 0;
  bool had_final = false;
  bool scoring_at_cancel = false;  // the engine had requests in scoring when the cancel was sent
};

v1::ChatRequest StormRequest(CancelPoint point, int i) {
  std::string prompt = absl::StrCat("Story ", i, ": tell me about a cat.");
  int max_tokens = 64;
  int k = 1;
  switch (point) {
    case CancelPoint::kQueued: break;
    case CancelPoint::kPrefill:
      // A long prompt (~200 tokens) so prefill takes several steps' worth of work.
      for (int r = 0; r < 16; ++r) absl::StrAppend(&prompt, " The cat sat on a mat near the door.");
      max_tokens = 16;
      break;
    case CancelPoint::kDecode: max_tokens = 160; break;
    case CancelPoint::kScoring: max_tokens = 8; k = 4; break;
    case CancelPoint::kCandidatesStreaming: max_tokens = 32; k = 4; break;
  }
  v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, prompt}}, max_tokens);
  request.mutable_sampling()->set_temperature(1.0f);
  request.mutable_sampling()->set_seed(i);
  request.mutable_sampling()->set_ignore_eos(true);
  request.set_num_candidates(k);
  request.set_request_id(absl::StrCat("storm-", i));
  return request;
}

// One stream: delay-based cancel points get a timer thread; the others cancel after reading some deltas.
void RunStream(ChatServer* server, v1::ChatService::Stub* stub, int i, StormStream* out) {
  std::mt19937 rng(1000 + i);
  const CancelPoint point = out->point;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(300)));
  auto reader = stub->Chat(&context, StormRequest(point, i));
  const int cancel_after_deltas = point == CancelPoint::kDecode ? std::uniform_int_distribution<int>(1, 40)(rng)
                                  : point == CancelPoint::kCandidatesStreaming ? std::uniform_int_distribution<int>(1, 6)(rng)
                                                                               : -1;
  std::thread timer;
  if (cancel_after_deltas < 0) {
    const int max_ms = point == CancelPoint::kQueued ? 40 : point == CancelPoint::kPrefill ? 400 : 2500;
    const int delay_ms = std::uniform_int_distribution<int>(0, max_ms)(rng);
    timer = std::thread([&, delay_ms] {
      absl::SleepFor(absl::Milliseconds(delay_ms));
      out->scoring_at_cancel = server->engine().Snapshot().num_scoring > 0;
      context.TryCancel();
    });
  }
  v1::ChatResponse response;
  while (reader->Read(&response)) {
    if (response.has_delta()) ++out->num_deltas;
    if (response.has_final()) out->had_final = true;
    if (out->num_deltas == cancel_after_deltas) context.TryCancel();
  }
  out->status = reader->Finish();
  ++out->num_statuses;
  if (timer.joinable()) timer.join();
}

TEST(CancelStorm, TwoHundredStreamsCancelledAtRandomPointsLeaveNothingBehind) {
  if (!HaveRewardModel()) GTEST_SKIP() << "models/stories15M(-safety-rm) missing: run scripts/fetch-model.sh";
  const std::string log_path = ::testing::TempDir() + "/cancel_storm_request_log.jsonl";
  std::remove(log_path.c_str());
  ChatServerOptions options;
  options.safety_model_dir = RewardModelDir();
  options.max_candidates = 4;
  options.max_queue = 256;
  options.max_num_seqs = 32;
  options.request_log = log_path;
  std::unique_ptr<ChatServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);

  constexpr int kNumStreams = 200;
  std::vector<StormStream> streams(kNumStreams);
  std::mt19937 rng(7);
  for (int i = 0; i < kNumStreams; ++i) streams[i].point = static_cast<CancelPoint>(i % kNumPoints);
  std::shuffle(streams.begin(), streams.end(), rng);
  const absl::Time start = absl::Now();
  {
    std::vector<std::unique_ptr<v1::ChatService::Stub>> stubs;
    for (int c = 0; c < 8; ++c) stubs.push_back(Connect(server->port()));  // several connections
    std::vector<std::thread> threads;
    for (int i = 0; i < kNumStreams; ++i) {
      threads.emplace_back(RunStream, server.get(), stubs[i % stubs.size()].get(), i, &streams[i]);
    }
    for (std::thread& t : threads) t.join();
  }
  const double storm_s = absl::ToDoubleSeconds(absl::Now() - start);

  // Every client got exactly one terminal status, OK or CANCELLED (nothing hung into the deadline).
  std::map<std::string, std::map<std::string, int>> outcomes;  // point → code → count
  int scoring_cancels = 0;
  for (const StormStream& s : streams) {
    EXPECT_EQ(s.num_statuses, 1);
    EXPECT_TRUE(s.status.ok() || s.status.error_code() == grpc::StatusCode::CANCELLED)
        << Name(s.point) << ": " << s.status.error_code() << " " << s.status.error_message();
    if (s.status.ok()) {
      EXPECT_TRUE(s.had_final);
    }
    ++outcomes[Name(s.point)][s.status.ok() ? "OK" : "CANCELLED"];
    if (s.point == CancelPoint::kScoring && s.scoring_at_cancel && !s.status.ok()) ++scoring_cancels;
  }

  // Nothing left behind, from a real scrape of /metrics.
  ASSERT_TRUE(WaitFor([&] {
    const EngineSnapshot snap = server->engine().Snapshot();
    return snap.num_running == 0 && snap.num_waiting == 0 && snap.num_scoring == 0;
  }, absl::Seconds(60)));
  const std::string scrape = ScrapeMetrics(server->metrics_port());
  ASSERT_FALSE(scrape.empty());
  EXPECT_EQ(ScrapedValue(scrape, "llama_chat_kv_cache_blocks_used", "pool=\"policy\""), 0);
  EXPECT_EQ(ScrapedValue(scrape, "llama_chat_kv_cache_blocks_used", "pool=\"reward\""), 0);
  EXPECT_EQ(ScrapedValue(scrape, "llama_chat_kv_cache_usage_ratio"), 0);
  EXPECT_EQ(ScrapedValue(scrape, "llama_chat_num_requests_running"), 0);
  EXPECT_EQ(ScrapedValue(scrape, "llama_chat_num_requests_waiting"), 0);
  const double counted = ScrapedValue(scrape, "llama_chat_request_success_total") +
                         ScrapedValue(scrape, "llama_chat_request_failure_total");

  // The server still answers, k = 1 and k = 4.
  auto stub = Connect(server->port());
  StreamResult after = Chat(*stub, MakeRequest({{v1::ROLE_USER, "Hi"}}, 8));
  EXPECT_TRUE(after.status.ok() && after.has_final) << after.status.error_message();
  v1::ChatRequest k4 = MakeRequest({{v1::ROLE_USER, "Hi"}}, 8);
  k4.set_num_candidates(4);
  StreamResult after_k4 = Chat(*stub, k4);
  EXPECT_TRUE(after_k4.status.ok() && after_k4.has_final) << after_k4.status.error_message();
  server.reset();  // closes the request log

  // The server's side: one log line per call that reached it, each request id once, as many as the metrics count.
  std::ifstream in(log_path);
  std::map<std::string, int> lines_per_id;
  std::map<std::string, int> server_codes;
  int storm_lines = 0;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json entry = nlohmann::json::parse(line);
    const std::string id = entry["request_id"];
    if (id.rfind("storm-", 0) != 0) continue;
    ++storm_lines;
    ++lines_per_id[id];
    ++server_codes[entry["code"].get<std::string>()];
  }
  for (const auto& [id, n] : lines_per_id) EXPECT_EQ(n, 1) << id;
  EXPECT_EQ(storm_lines, counted) << "log lines vs the metrics' outcomes";
  for (int i = 0; i < kNumStreams; ++i) {
    if (streams[i].num_deltas > 0 || streams[i].status.ok()) {
      EXPECT_EQ(lines_per_id[absl::StrCat("storm-", i)], 1) << "stream " << i << " reached the server";
    }
  }

  std::printf("cancel storm: %d streams in %.1f s; %d calls reached the server (%d never did: cancelled in "
              "flight); cancels sent while reward scoring ran: %d\n",
              kNumStreams, storm_s, storm_lines, kNumStreams - storm_lines, scoring_cancels);
  for (const auto& [point, codes] : outcomes) {
    std::printf("  %-16s", point.c_str());
    for (const auto& [code, n] : codes) std::printf(" %s=%d", code.c_str(), n);
    std::printf("\n");
  }
  for (const auto& [code, n] : server_codes) std::printf("  server: %s=%d\n", code.c_str(), n);
}

}  // namespace
}  // namespace llama::server::testing
