// ChatRequest validation → chat prompt ids (server/request_validation.h, engine/text/chat_prompt.h), on the LLaMA 2
// tokenizer (fuzz_util.h). The input is a serialized llamachat.v1.ChatRequest (what a client sends; bytes that do
// not parse are what gRPC refuses before us). Checked: PrepareChatRequest refuses with INVALID_ARGUMENT and a message
// that names a field, or returns a request the engine can run: prompt ids inside the vocabulary that start with BOS
// and leave room for a generated token, max_tokens in [1, context], 1 ≤ k ≤ the cap, a finite temperature and top_p
// in (0, 1].
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/stubs/logging.h"
#include "llamachat/v1/chat.pb.h"
#include "server/request_validation.h"

namespace {

const llama::server::ValidationLimits& Limits() {
  static const llama::server::ValidationLimits limits = [] {
    const llama::Tokenizer& tokenizer = llama::fuzz::FuzzTokenizer();
    llama::server::ValidationLimits l;
    l.context_length = 256;  // small, so that dropping turns and the too-long refusals are reached
    l.vocab_size = tokenizer.vocab_size();
    l.default_max_tokens = 100;
    l.max_candidates = 4;
    l.has_reward_model = true;
    l = llama::server::WithTokenizerBounds(l, tokenizer);
    if (!l.Validate().ok()) llama::fuzz::Fail("limits: " + l.Validate().ToString());
    return l;
  }();
  return limits;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Protobuf logs every string field with invalid UTF-8 it refuses; that is gRPC's refusal, not ours.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llamachat::v1::ChatRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const llama::server::ValidationLimits& limits = Limits();
  const llama::Tokenizer& tokenizer = llama::fuzz::FuzzTokenizer();
  auto prepared = llama::server::PrepareChatRequest(request, limits, tokenizer, /*fallback_seed=*/7);
  if (!prepared.ok()) {
    const absl::Status& s = prepared.status();
    if (!absl::IsInvalidArgument(s) || s.message().find(": ") == absl::string_view::npos) {
      llama::fuzz::Fail("refusal is not INVALID_ARGUMENT naming a field: " + s.ToString());
    }
    return 0;
  }
  const llama::GenerationRequest& r = prepared->request;
  if (r.prompt_tokens.empty() || r.prompt_tokens[0] != tokenizer.bos_id()) llama::fuzz::Fail("prompt without BOS");
  if (static_cast<int>(r.prompt_tokens.size()) > limits.context_length - 1) {
    llama::fuzz::Fail(absl::StrCat("prompt of ", r.prompt_tokens.size(), " tokens leaves no room to generate"));
  }
  for (int32_t id : r.prompt_tokens) {
    if (id < 0 || id >= tokenizer.vocab_size()) llama::fuzz::Fail(absl::StrCat("prompt id ", id));
  }
  if (r.max_tokens < 1 || r.max_tokens > limits.context_length) llama::fuzz::Fail("max_tokens out of range");
  if (r.num_candidates < 1 || r.num_candidates > limits.max_candidates) llama::fuzz::Fail("num_candidates");
  if (!std::isfinite(r.sampling.temperature) || r.sampling.temperature < 0) llama::fuzz::Fail("temperature");
  if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) llama::fuzz::Fail("top_p");
  if (r.segment_tokens < 0) llama::fuzz::Fail("segment_tokens");
  if (prepared->dropped_turns < 0) llama::fuzz::Fail("dropped_turns");
  return 0;
}
