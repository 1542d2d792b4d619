// Slow and hostile clients against an in-process server whose backend is FakeBackend (fast steps, any length; the
// tokenizer is stories15M's): a client that stops reading is dropped with RESOURCE_EXHAUSTED "client not reading"
// once --max_stream_pending_bytes piles up, without blocking the engine or other streams, and its sequence is freed
// while it still reads nothing; streams beyond --max_concurrent_streams are RESOURCE_EXHAUSTED; a request over
// --max_message_bytes is refused by gRPC before parsing; invalid UTF-8 in any text field is INVALID_ARGUMENT naming
// the field; a write that stalls is cancelled after --stream_stall_timeout_s; a connection that stops answering
// keepalive pings is closed and its stream's sequence freed.
#include <poll.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/text/model_tokenizer.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "gtest/gtest.h"
#include "tests/server/e2e_helpers.h"
#include "tests/support/fake_backend.h"

namespace llama::server::testing {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<ChatServer> StartFakeServer(llama::testing::FakeBackendOptions fake, ChatServerOptions options) {
  options.model_path = ModelDir();  // the tokenizer; the weights are never loaded
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  auto server = ChatServer::StartWithBackend(options, std::make_unique<llama::testing::FakeBackend>(fake));
  if (!server.ok()) {
    ADD_FAILURE() << server.status();
    return nullptr;
  }
  const absl::Status warm = (*server)->Warmup();
  EXPECT_TRUE(warm.ok()) << warm;
  return std::move(*server);
}

// The id of the longest normal piece: every generated token then carries as many bytes as a token can.
int32_t LongestPieceId() {
  auto tokenizer = LoadModelTokenizer(ModelDir());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  int32_t best = 0;
  for (int32_t id = 0; id < (*tokenizer)->vocab_size(); ++id) {
    if ((*tokenizer)->piece_kind(id) != Tokenizer::PieceKind::kNormal) continue;
    if ((*tokenizer)->PieceBytes(id).size() > (*tokenizer)->PieceBytes(best).size()) best = id;
  }
  return best;
}

class HostileClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveModel()) GTEST_SKIP() << "models/stories15M missing: run scripts/fetch-model.sh";
  }
};

TEST_F(HostileClientsTest, AClientThatStopsReadingIsDroppedWithoutBlockingOthers) {
  constexpr int kMaxTokens = 16000;
  constexpr int kPendingLimit = 4096;
  llama::testing::FakeBackendOptions fake;
  fake.max_position_embeddings = kMaxTokens + 64;
  fake.num_blocks = (kMaxTokens + 64) / 16 + 64;
  const int32_t long_piece = LongestPieceId();
  fake.next_token = [long_piece](absl::Span<const int32_t>, const OutputRow&) { return long_piece; };
  fake.step_latency = absl::Microseconds(200);
  ChatServerOptions options;
  options.max_stream_pending_bytes = kPendingLimit;
  std::unique_ptr<ChatServer> server = StartFakeServer(fake, options);
  ASSERT_NE(server, nullptr);

  // A client with a small HTTP/2 window that never reads: the server's writes stop completing.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto slow_stub = v1::ChatService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext slow_context;
  slow_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  v1::ChatRequest slow_request = MakeRequest({{v1::ROLE_USER, "Tell me everything."}}, kMaxTokens);
  slow_request.mutable_sampling()->set_ignore_eos(true);
  std::unique_ptr<grpc::ClientReader<v1::ChatResponse>> slow_reader = slow_stub->Chat(&slow_context, slow_request);

  // Dropped: the engine frees the sequence long before max_tokens while the client still reads nothing.
  ASSERT_TRUE(WaitFor([&] { return server->engine().Snapshot().num_steps > 10; }));
  ASSERT_TRUE(WaitFor([&] {
    const EngineSnapshot s = server->engine().Snapshot();
    return s.num_running == 0 && s.num_waiting == 0 && s.kv_blocks_used == 0;
  }, absl::Seconds(60)));
  const double generated = MetricValue(server->metrics(), "llama_chat_generation_tokens_total");
  EXPECT_LT(generated, kMaxTokens) << "the stream ran to max_tokens: it was never dropped";

  // Other streams are served meanwhile, the stuck client notwithstanding.
  auto stub = Connect(server->port());
  StreamResult other = Chat(*stub, MakeRequest({{v1::ROLE_USER, "Hi"}}, 32));
  EXPECT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_TRUE(other.has_final);

  // When the slow client reads at last it gets what was in flight and the clear status; much less than the reply.
  StreamResult slow = ReadStream(*slow_reader);
  EXPECT_EQ(slow.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << slow.status.error_message();
  EXPECT_THAT(slow.status.error_message(), HasSubstr("client not reading"));
  EXPECT_FALSE(slow.has_final);
  const size_t full_reply_bytes = static_cast<size_t>(kMaxTokens) * 8;
  EXPECT_LT(slow.text.size(), full_reply_bytes / 2) << "the server kept buffering for a client that did not read";
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_request_failure_total", "code", "RESOURCE_EXHAUSTED"), 1);
}

// A client whose window is full and that never reads, with the byte bound out of reach: the write in flight is
// cancelled after --stream_stall_timeout_s, the engine frees the sequence and the call's slot comes back.
// mid_generation: the engine is still generating when the write stalls; otherwise it has finished (the reply is
// all buffered) and only the call is left.
void ExpectStalledWriteIsCancelled(bool mid_generation) {
  const int max_tokens = mid_generation ? 16000 : 2000;
  llama::testing::FakeBackendOptions fake;
  fake.max_position_embeddings = max_tokens + 64;
  fake.num_blocks = (max_tokens + 64) / 16 + 64;
  const int32_t long_piece = LongestPieceId();
  fake.next_token = [long_piece](absl::Span<const int32_t>, const OutputRow&) { return long_piece; };
  // Mid-generation the engine needs 16 s to reach max_tokens, far beyond the 1 s stall timeout.
  fake.step_latency = mid_generation ? absl::Milliseconds(1) : absl::Microseconds(100);
  ChatServerOptions options;
  options.max_stream_pending_bytes = 1 << 30;  // never reached: only the time bound can end the stream
  options.stream_stall_timeout_s = 1;
  std::unique_ptr<ChatServer> server = StartFakeServer(fake, options);
  ASSERT_NE(server, nullptr);

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto slow_stub = v1::ChatService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext slow_context;
  slow_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
  v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, "Tell me everything."}}, max_tokens);
  request.mutable_sampling()->set_ignore_eos(true);
  std::unique_ptr<grpc::ClientReader<v1::ChatResponse>> slow_reader = slow_stub->Chat(&slow_context, request);

  ASSERT_TRUE(WaitFor([&] { return server->serving().active_streams() == 1; }));
  if (!mid_generation) {
    // The engine finishes while the first write is stuck: only the call is left.
    ASSERT_TRUE(WaitFor([&] {
      return MetricValue(server->metrics(), "llama_chat_generation_tokens_total") == max_tokens;
    }, absl::Seconds(60)));
  }
  // The call ends (OnDone released its slot) while the client still reads nothing, and the sequence is freed.
  ASSERT_TRUE(WaitFor([&] {
    const EngineSnapshot s = server->engine().Snapshot();
    return server->serving().active_streams() == 0 && s.num_running == 0 && s.kv_blocks_used == 0;
  }, absl::Seconds(60)));
  if (mid_generation) {
    EXPECT_LT(MetricValue(server->metrics(), "llama_chat_generation_tokens_total"), max_tokens)
        << "the engine ran to max_tokens: the stalled stream was not stopped";
  }
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_request_failure_total", "code", "RESOURCE_EXHAUSTED"), 1);

  // No status can pass a full window: the server cancelled the stream.
  StreamResult slow = ReadStream(*slow_reader);
  EXPECT_EQ(slow.status.error_code(), grpc::StatusCode::CANCELLED) << slow.status.error_message();
  EXPECT_FALSE(slow.has_final);

  // The server still answers.
  StreamResult other = Chat(*Connect(server->port()), MakeRequest({{v1::ROLE_USER, "Hi"}}, 8));
  EXPECT_TRUE(other.status.ok()) << other.status.error_message();
}

TEST_F(HostileClientsTest, AWriteStalledMidGenerationIsCancelledAfterTheStallTimeout) {
  ExpectStalledWriteIsCancelled(/*mid_generation=*/true);
}

TEST_F(HostileClientsTest, AWriteStalledAfterTheEngineFinishedIsCancelledAfterTheStallTimeout) {
  ExpectStalledWriteIsCancelled(/*mid_generation=*/false);
}

TEST_F(HostileClientsTest, StreamsBeyondMaxConcurrentStreamsAreResourceExhausted) {
  llama::testing::FakeBackendOptions fake;
  fake.step_latency = absl::Milliseconds(20);
  ChatServerOptions options;
  options.max_concurrent_streams = 2;
  std::unique_ptr<ChatServer> server = StartFakeServer(fake, options);
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  v1::ChatRequest long_request = MakeRequest({{v1::ROLE_USER, "Hi"}}, 100);
  long_request.mutable_sampling()->set_ignore_eos(true);
  StreamResult first, second;
  std::thread a([&] { first = Chat(*stub, long_request); });
  std::thread b([&] { second = Chat(*stub, long_request); });
  ASSERT_TRUE(WaitFor([&] { return server->serving().active_streams() == 2; }));
  StreamResult third = Chat(*stub, MakeRequest({{v1::ROLE_USER, "Hi"}}, 4));
  EXPECT_EQ(third.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.status.error_message(), HasSubstr("--max_concurrent_streams 2"));
  a.join();
  b.join();
  EXPECT_TRUE(first.status.ok() && second.status.ok());
  // A slot comes back in the call's OnDone, on a gRPC thread, which may run just after the client has read its
  // status.
  ASSERT_TRUE(WaitFor([&] { return server->serving().active_streams() == 0; })) << "a slot did not come back";
  EXPECT_TRUE(Chat(*stub, MakeRequest({{v1::ROLE_USER, "Hi"}}, 4)).status.ok());
}

TEST_F(HostileClientsTest, OversizedRequestIsRefusedByGrpcBeforeParsing) {
  ChatServerOptions options;
  options.max_grpc_message_bytes = 1024;
  std::unique_ptr<ChatServer> server = StartFakeServer({}, options);
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  StreamResult big = Chat(*stub, MakeRequest({{v1::ROLE_USER, std::string(2000, 'a')}}, 4));
  EXPECT_EQ(big.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.status.error_message();
  EXPECT_EQ(server->engine().Snapshot().num_steps, 1) << "only the warm-up step";
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_request_failure_total"), 0) << "our handler never ran";
  EXPECT_TRUE(Chat(*stub, MakeRequest({{v1::ROLE_USER, std::string(500, 'a')}}, 4)).status.ok());
}

// The serialized message with `placeholder` replaced by `bad` (the same length, so every length prefix holds): how a
// client sends text our own serializer would refuse to produce.
grpc::ByteBuffer WithBytes(const google::protobuf::Message& message, const std::string& placeholder,
                           const std::string& bad) {
  std::string wire = message.SerializeAsString();
  const size_t at = wire.find(placeholder);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(wire.find(placeholder, at + 1), std::string::npos) << "the placeholder must be unique";
  EXPECT_EQ(placeholder.size(), bad.size());
  wire.replace(at, placeholder.size(), bad);
  grpc::Slice slice(wire);
  return grpc::ByteBuffer(&slice, 1);
}

// Chat with a raw request body, read like any stream.
StreamResult RawChat(int port, const grpc::ByteBuffer& request) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  const grpc::internal::RpcMethod method("/llamachat.v1.ChatService/Chat", grpc::internal::RpcMethod::SERVER_STREAMING);
  std::unique_ptr<grpc::ClientReader<v1::ChatResponse>> reader(
      grpc::internal::ClientReaderFactory<v1::ChatResponse>::Create(channel.get(), method, &context, request));
  return ReadStream(*reader);
}

template <typename Response>
grpc::Status RawUnary(int port, const std::string& method_name, const grpc::ByteBuffer& request) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  const grpc::internal::RpcMethod method(method_name.c_str(), grpc::internal::RpcMethod::NORMAL_RPC);
  Response response;
  return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, Response>(channel.get(), method, &context, request,
                                                                       &response);
}

// Content is a proto3 `string`, which protobuf refuses to parse when it is not UTF-8; the server parses the raw
// request itself (server/request_parsing.h) so the client learns which field and byte.
TEST_F(HostileClientsTest, InvalidUtf8IsInvalidArgumentNamingTheField) {
  std::unique_ptr<ChatServer> server = StartFakeServer({}, {});
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  struct Case {
    std::string bad;
    int byte;
  };
  const std::vector<Case> cases = {
      {"caf\xC3", 3},               // truncated 2-byte character
      {"\xFF\xFE", 0},              // bytes that never occur in UTF-8
      {"a\xED\xA0\x80z", 1},        // a UTF-16 surrogate (U+D800) encoded as UTF-8
      {"ok \xED\xBF\xBF", 3},       // the last surrogate (U+DFFF)
      {"\xC0\xAF", 0},              // overlong '/' (2 bytes)
      {"x\xE0\x80\xAF", 1},         // overlong '/' (3 bytes)
      {"\xF0\x82\x82\xAC", 0},      // overlong U+20AC (4 bytes)
      {"\xF4\x90\x80\x80", 0},      // above U+10FFFF
      {"valid \xE2\x82\xAC then \x80", 15},  // a stray continuation byte after valid text
  };
  for (const Case& c : cases) {
    const std::string placeholder(c.bad.size(), '#');
    const v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, placeholder}}, 4);
    StreamResult result = RawChat(port, WithBytes(request, placeholder, c.bad));
    EXPECT_EQ(result.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << result.status.error_message();
    EXPECT_EQ(result.status.error_message(),
              absl::StrCat("messages[0].content: is not valid UTF-8 (byte ", c.byte, " of ", c.bad.size(), ")"));
  }
  const std::string bad = "\xC3(";
  const std::string placeholder = "##";
  // A system message, an assistant turn, a stop string, the request id.
  StreamResult system = RawChat(
      port, WithBytes(MakeRequest({{v1::ROLE_SYSTEM, placeholder}, {v1::ROLE_USER, "Hi"}}, 4), placeholder, bad));
  EXPECT_EQ(system.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(system.status.error_message(), HasSubstr("messages[0].content: is not valid UTF-8 (byte 0 of 2)"));
  StreamResult assistant = RawChat(
      port, WithBytes(MakeRequest({{v1::ROLE_USER, "Hi"}, {v1::ROLE_ASSISTANT, placeholder}, {v1::ROLE_USER, "And?"}},
                                  4),
                      placeholder, bad));
  EXPECT_EQ(assistant.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(assistant.status.error_message(), HasSubstr("messages[1].content: is not valid UTF-8"));
  v1::ChatRequest with_stop = MakeRequest({{v1::ROLE_USER, "Hi"}}, 4);
  with_stop.mutable_sampling()->add_stop("END");
  with_stop.mutable_sampling()->add_stop(placeholder);
  StreamResult stop = RawChat(port, WithBytes(with_stop, placeholder, bad));
  EXPECT_EQ(stop.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(stop.status.error_message(), HasSubstr("sampling.stop[1]: is not valid UTF-8"));
  v1::ChatRequest with_id = MakeRequest({{v1::ROLE_USER, "Hi"}}, 4);
  with_id.set_request_id(placeholder);
  StreamResult id = RawChat(port, WithBytes(with_id, placeholder, bad));
  EXPECT_EQ(id.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(id.status.error_message(), HasSubstr("request_id: is not valid UTF-8"));

  // Tokenize and Score carry client text too (Score's check comes before "no reward model").
  v1::TokenizeRequest tokenize;
  *tokenize.mutable_messages() = MakeRequest({{v1::ROLE_USER, "Hi"}, {v1::ROLE_ASSISTANT, placeholder}}, 4).messages();
  const grpc::Status tokenized = RawUnary<v1::TokenizeResponse>(port, "/llamachat.v1.ChatService/Tokenize",
                                                                WithBytes(tokenize, placeholder, bad));
  EXPECT_EQ(tokenized.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(tokenized.error_message(), HasSubstr("messages[1].content: is not valid UTF-8"));
  v1::ScoreRequest score;
  *score.mutable_messages() = MakeRequest({{v1::ROLE_USER, "Hi"}}, 4).messages();
  score.set_response(placeholder);
  const grpc::Status scored =
      RawUnary<v1::ScoreResponse>(port, "/llamachat.v1.ChatService/Score", WithBytes(score, placeholder, bad));
  EXPECT_EQ(scored.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(scored.error_message(), HasSubstr("response: is not valid UTF-8"));

  // Bytes that are no message at all: a length running past the end.
  const std::string truncated = "\x0A\x05" "ab";
  grpc::Slice slice(truncated);
  StreamResult garbage = RawChat(port, grpc::ByteBuffer(&slice, 1));
  EXPECT_EQ(garbage.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(garbage.status.error_message(), HasSubstr("not a well-formed llamachat.v1.ChatRequest"));

  EXPECT_EQ(server->engine().Snapshot().num_steps, 1) << "only the warm-up step";
  // Valid multi-byte text (2-, 3- and 4-byte characters) is served, through the generated client as usual.
  StreamResult fine = Chat(*Connect(port), MakeRequest({{v1::ROLE_USER, "caf\xC3\xA9 \xE2\x98\x95 \xF0\x9D\x84\x9E"}}, 4));
  EXPECT_TRUE(fine.status.ok()) << fine.status.error_message();
  EXPECT_TRUE(fine.has_final);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_request_failure_total", "code", "INVALID_ARGUMENT"),
            cases.size() + 5);
}

// A raw HTTP/2 client over a plain socket: the connection preface, SETTINGS (and the ACK of the server's), one Chat
// call (HEADERS + DATA), and then silence: it never reads or writes again, so it answers no keepalive ping, like a
// client whose host died. Read() afterwards drains what the server sent, frame by frame.
class SilentHttp2Client {
 public:
  struct Frame {
    uint8_t type = 0;
    uint8_t flags = 0;
  };
  static constexpr uint8_t kData = 0, kHeaders = 1, kSettings = 4, kPing = 6, kGoAway = 7;

  ~SilentHttp2Client() {
    if (fd_ >= 0) close(fd_);
  }

  bool Start(int port, const std::string& request) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return false;
    if (!Send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") || !SendFrame(kSettings, 0, 0, "")) return false;
    // The server's SETTINGS must be acknowledged, or it closes the connection for that instead.
    for (;;) {
      std::optional<Frame> frame = ReadFrame(absl::Seconds(10));
      if (!frame.has_value()) return false;
      if (frame->type == kSettings && (frame->flags & 0x1) == 0) break;
    }
    if (!SendFrame(kSettings, 0x1, 0, "")) return false;
    std::string headers;
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {":method", "POST"}, {":scheme", "http"}, {":path", "/llamachat.v1.ChatService/Chat"},
             {":authority", absl::StrCat("127.0.0.1:", port)}, {"content-type", "application/grpc"},
             {"te", "trailers"}}) {
      // HPACK literal header field without indexing, new name, no Huffman; every length here is < 127.
      headers += '\0';
      headers += static_cast<char>(name.size());
      headers += name;
      headers += static_cast<char>(value.size());
      headers += value;
    }
    std::string message(5, '\0');  // gRPC framing: not compressed, 4-byte big-endian length
    for (int i = 0; i < 4; ++i) message[1 + i] = static_cast<char>((request.size() >> (24 - 8 * i)) & 0xFF);
    message += request;
    return SendFrame(kHeaders, 0x4, 1, headers) && SendFrame(kData, 0x1, 1, message);
  }

  // Every frame the server sent until it closed the connection; nullopt when it is still open after `timeout`.
  std::optional<std::vector<Frame>> ReadUntilClosed(absl::Duration timeout) {
    std::vector<Frame> frames;
    const absl::Time end = absl::Now() + timeout;
    for (;;) {
      std::optional<Frame> frame = ReadFrame(end - absl::Now());
      if (frame.has_value()) {
        frames.push_back(*frame);
        continue;
      }
      if (closed_) return frames;
      return std::nullopt;
    }
  }

 private:
  bool Send(const std::string& bytes) {
    return write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  }
  bool SendFrame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
    std::string header(9, '\0');
    header[0] = static_cast<char>(payload.size() >> 16);
    header[1] = static_cast<char>(payload.size() >> 8);
    header[2] = static_cast<char>(payload.size());
    header[3] = static_cast<char>(type);
    header[4] = static_cast<char>(flags);
    for (int i = 0; i < 4; ++i) header[5 + i] = static_cast<char>(stream >> (24 - 8 * i));
    return Send(header + payload);
  }
  // n bytes, or false on close / error (closed_) or when nothing came within the timeout.
  bool ReadExactly(char* out, size_t n, absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (n > 0) {
      pollfd p{fd_, POLLIN, 0};
      const int64_t ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(end - absl::Now()));
      if (poll(&p, 1, static_cast<int>(ms)) <= 0) return false;
      const ssize_t got = read(fd_, out, n);
      if (got <= 0) {
        closed_ = true;  // EOF or ECONNRESET: the server closed the connection
        return false;
      }
      out += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  std::optional<Frame> ReadFrame(absl::Duration timeout) {
    unsigned char header[9];
    if (!ReadExactly(reinterpret_cast<char*>(header), 9, timeout)) return std::nullopt;
    const size_t length = (size_t{header[0]} << 16) | (size_t{header[1]} << 8) | header[2];
    std::string payload(length, '\0');
    if (length > 0 && !ReadExactly(payload.data(), length, absl::Seconds(10))) return std::nullopt;
    return Frame{header[3], header[4]};
  }

  int fd_ = -1;
  bool closed_ = false;
};

// A client that stops answering pings mid-stream (here: stops reading its socket at all) is reaped by HTTP/2
// keepalive: the server pings after keepalive_time_s, closes the connection when the ping is unanswered after
// keepalive_timeout_s, and the stream's cancel frees its sequence. Nothing else could end it in time: the engine
// needs minutes for max_tokens, and the byte and stall bounds are off.
TEST_F(HostileClientsTest, KeepaliveReapsAConnectionThatStopsAnsweringPings) {
  llama::testing::FakeBackendOptions fake;
  constexpr int kMaxTokens = 16000;
  fake.max_position_embeddings = kMaxTokens + 64;
  fake.num_blocks = (kMaxTokens + 64) / 16 + 64;
  fake.step_latency = absl::Milliseconds(20);  // 16000 tokens: more than 5 minutes
  ChatServerOptions options;
  options.keepalive_time_s = 1;
  options.keepalive_timeout_s = 1;
  options.max_stream_pending_bytes = 1 << 30;
  options.stream_stall_timeout_s = 0;
  std::unique_ptr<ChatServer> server = StartFakeServer(fake, options);
  ASSERT_NE(server, nullptr);

  v1::ChatRequest request = MakeRequest({{v1::ROLE_USER, "Tell me everything."}}, kMaxTokens);
  request.mutable_sampling()->set_ignore_eos(true);
  SilentHttp2Client client;
  ASSERT_TRUE(client.Start(server->port(), request.SerializeAsString()));
  ASSERT_TRUE(WaitFor([&] { return server->engine().Snapshot().num_running == 1; }));
  // Reaped within keepalive_time + keepalive_timeout (2 s); the bound leaves room for a loaded machine.
  ASSERT_TRUE(WaitFor([&] {
    const EngineSnapshot s = server->engine().Snapshot();
    return server->serving().active_streams() == 0 && s.num_running == 0 && s.kv_blocks_used == 0;
  }, absl::Seconds(2 + 10)));
  EXPECT_LT(MetricValue(server->metrics(), "llama_chat_generation_tokens_total"), kMaxTokens);
  EXPECT_EQ(MetricValue(server->metrics(), "llama_chat_request_failure_total", "code", "CANCELLED"), 1);

  // What the server sent the silent client: the reply's start, then a ping (never answered), then it hung up.
  std::optional<std::vector<SilentHttp2Client::Frame>> frames = client.ReadUntilClosed(absl::Seconds(10));
  ASSERT_TRUE(frames.has_value()) << "the server did not close the connection";
  bool data = false, ping = false;
  for (const SilentHttp2Client::Frame& frame : *frames) {
    data = data || frame.type == SilentHttp2Client::kData;
    ping = ping || (frame.type == SilentHttp2Client::kPing && (frame.flags & 0x1) == 0);
  }
  EXPECT_TRUE(data) << "the stream never started";
  EXPECT_TRUE(ping) << "the server closed the connection without a keepalive ping";

  // The server still answers everyone else.
  StreamResult other = Chat(*Connect(server->port()), MakeRequest({{v1::ROLE_USER, "Hi"}}, 4));
  EXPECT_TRUE(other.status.ok()) << other.status.error_message();
}

// One line per call, each a JSON object a parser reads back; a request id built to forge a second line (newline,
// quotes, an escape sequence) is refused and logged escaped, so the file holds exactly one line per call.
TEST_F(HostileClientsTest, RequestLogHasOneEscapedLinePerCall) {
  const std::string log_path = ::testing::TempDir() + "/hostile_request_log.jsonl";
  std::remove(log_path.c_str());
  ChatServerOptions options;
  options.request_log = log_path;
  std::unique_ptr<ChatServer> server = StartFakeServer({}, options);
  ASSERT_NE(server, nullptr);
  auto stub = Connect(server->port());
  const std::string forged = "x\"}\n{\"event\":\"chat\",\"code\":\"OK\",\"request_id\":\"admin\"}\r\x1b[2J";
  v1::ChatRequest evil = MakeRequest({{v1::ROLE_USER, "Hi\n{\"code\":\"OK\"}"}}, 4);
  evil.set_request_id(forged);
  EXPECT_EQ(Chat(*stub, evil).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ChatRequest good = MakeRequest({{v1::ROLE_USER, "Hi \"there\"\n"}}, 4);
  good.set_request_id("client-7");
  ASSERT_TRUE(Chat(*stub, good).status.ok());
  server.reset();  // flushes and closes the log

  std::ifstream in(log_path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u) << "one line per call";
  EXPECT_EQ(lines[0]["request_id"], forged);
  EXPECT_EQ(lines[0]["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(lines[0]["finish_reason"], "");
  EXPECT_EQ(lines[1]["request_id"], "client-7");
  EXPECT_EQ(lines[1]["code"], "OK");
  EXPECT_EQ(lines[1]["finish_reason"], "length");
  EXPECT_EQ(lines[1]["completion_tokens"], 4);
  EXPECT_GT(lines[1]["prompt_tokens"].get<int>(), 0);
  EXPECT_GT(lines[1]["total_time_s"].get<double>(), 0);
  EXPECT_NE(lines[1]["peer"].get<std::string>().find("127.0.0.1"), std::string::npos);
}

}  // namespace
}  // namespace llama::server::testing
