// Helpers shared by the server's end-to-end tests: an in-process ChatServer on a free loopback port, a synchronous
// client, and reading the server's Prometheus families.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "llamachat/v1/chat.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "server/chat_server.h"

namespace llama::server::testing {

namespace v1 = ::llamachat::v1;

inline std::string ModelDir() { return std::string(LLAMA_SOURCE_DIR) + "/models/stories15M"; }
inline bool HaveModel() {
  return std::ifstream(ModelDir() + "/model.safetensors").good() && std::ifstream(ModelDir() + "/tokenizer.model").good();
}

// A server on 127.0.0.1 with an OS-picked port (stories15M unless options name a model), warmed up unless told
// otherwise.
inline std::unique_ptr<ChatServer> StartServer(ChatServerOptions options, bool warm_up = true) {
  if (options.model_path.empty()) options.model_path = ModelDir();
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = 0;
  if (options.num_threads == 0) options.num_threads = 2;
  auto server = ChatServer::Start(options);
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  if (warm_up) {
    absl::Status warm = (*server)->Warmup();
    EXPECT_TRUE(warm.ok()) << warm;
  }
  return std::move(*server);
}

inline std::unique_ptr<v1::ChatService::Stub> Connect(int port) {
  return v1::ChatService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

// A fixture whose tests share one in-process server, started once per suite with MakeOptions() (a test suite
// skips without models/stories15M). server_ and a connected stub_ for every test.
template <ChatServerOptions (*MakeOptions)()>
class SharedServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (HaveModel()) server_ = StartServer(MakeOptions()).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!HaveModel()) GTEST_SKIP() << "models/stories15M missing: run scripts/fetch-model.sh";
    ASSERT_NE(server_, nullptr);
    stub_ = Connect(server_->port());
  }

  static inline ChatServer* server_ = nullptr;
  std::unique_ptr<v1::ChatService::Stub> stub_;
};


inline v1::ChatRequest MakeRequest(const std::vector<std::pair<v1::Role, std::string>>& messages, int max_tokens) {
  v1::ChatRequest request;
  for (const auto& [role, content] : messages) {
    v1::Message* m = request.add_messages();
    m->set_role(role);
    m->set_content(content);
  }
  request.mutable_sampling()->set_temperature(0.0f);
  request.mutable_sampling()->set_max_tokens(max_tokens);
  return request;
}

// The dialog as the JSON file `llama-chat generate/tokenize --dialog` read.
inline std::string DialogJson(const v1::ChatRequest& request) {
  nlohmann::json dialog = nlohmann::json::array();
  for (const v1::Message& m : request.messages()) {
    const char* role = m.role() == v1::ROLE_SYSTEM ? "system" : m.role() == v1::ROLE_USER ? "user" : "assistant";
    dialog.push_back({{"role", role}, {"content", m.content()}});
  }
  return dialog.dump();
}

struct StreamResult {
  std::vector<std::string> deltas;
  std::string text;
  std::vector<int32_t> token_ids;
  bool has_final = false;
  v1::Final final_message;
  grpc::Status status;
};

inline StreamResult ReadStream(grpc::ClientReader<v1::ChatResponse>& reader) {
  StreamResult result;
  v1::ChatResponse response;
  while (reader.Read(&response)) {
    if (response.has_delta()) {
      EXPECT_FALSE(result.has_final) << "Delta after Final";
      result.deltas.push_back(response.delta().text());
      result.text += response.delta().text();
      result.token_ids.insert(result.token_ids.end(), response.delta().token_ids().begin(),
                              response.delta().token_ids().end());
    } else if (response.has_final()) {
      EXPECT_FALSE(result.has_final) << "two Final messages";
      result.has_final = true;
      result.final_message = response.final();
    }
  }
  result.status = reader.Finish();
  return result;
}

inline StreamResult Chat(v1::ChatService::Stub& stub, const v1::ChatRequest& request,
                         absl::Duration timeout = absl::Seconds(120)) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto reader = stub.Chat(&context, request);
  return ReadStream(*reader);
}

// Runs a command and returns its stdout (the exit status must be 0).
inline std::string RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return out;
  }
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  const int rc = pclose(pipe);
  EXPECT_EQ(rc, 0) << command;
  return out;
}

inline std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Sum of a family's metric values (counters and gauges), optionally only those with label name=value.
inline double MetricValue(ServerMetrics& metrics, const std::string& family, const std::string& label = "",
                          const std::string& value = "") {
  double sum = 0;
  for (const prometheus::MetricFamily& f : metrics.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      bool match = label.empty();
      for (const auto& l : m.label) match = match || (l.name == label && l.value == value);
      if (!match) continue;
      sum += m.counter.value + m.gauge.value + static_cast<double>(m.histogram.sample_count);
    }
  }
  return sum;
}

// grpc.health.v1.Health/Check for `service` through a generic stub (the health proto is not compiled into the C++
// tests; its two messages are tiny enough to encode by hand). Returns the status enum: 1 SERVING, 2 NOT_SERVING,
// 0 UNKNOWN; -1 when the call failed.
inline int HealthStatus(int port, const std::string& service) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  // HealthCheckRequest{string service = 1}: tag 0x0A, length, bytes.
  std::string request_bytes;
  if (!service.empty()) request_bytes = std::string("\x0A") + static_cast<char>(service.size()) + service;
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse{ServingStatus status = 1}: tag 0x08, varint (absent = 0).
  return bytes.size() >= 2 && bytes[0] == 0x08 ? static_cast<int>(bytes[1]) : 0;
}
constexpr int kServing = 1;
constexpr int kNotServing = 2;

// GET http://127.0.0.1:port/metrics (the Prometheus endpoint, over a real socket); the body, "" on failure.
inline std::string ScrapeMetrics(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      for (ssize_t n; (n = read(fd, buffer, sizeof(buffer))) > 0;) response.append(buffer, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// Sum of the samples of `name` in a Prometheus text exposition whose labels contain `labels` (e.g. pool="policy";
// empty: all samples); -1 when there is none.
inline double ScrapedValue(const std::string& text, const std::string& name, const std::string& labels = "") {
  double sum = 0;
  bool found = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    const size_t space = line.rfind(' ');
    if (!labels.empty() && line.substr(0, space).find(labels) == std::string::npos) continue;
    sum += std::stod(line.substr(space + 1));
    found = true;
  }
  return found ? sum : -1;
}

// Polls cond every 10 ms until it holds or timeout passes.
template <typename Cond>
bool WaitFor(Cond cond, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return cond();
}

// No request running, waiting or holding a KV block. The engine publishes its snapshot when it admits requests and
// after each step, so a stream whose Final the client has seen reads as running until its last step is published.
inline bool EngineIdle(ChatServer& server) {
  const EngineSnapshot s = server.engine().Snapshot();
  return s.num_running == 0 && s.num_waiting == 0 && s.kv_blocks_used == 0;
}

}  // namespace llama::server::testing
