// The tokenizer (engine/text/tokenizer.h) on the LLaMA 2 tokenizer.model (fuzz_util.h says where it is found).
// The input is used twice:
// 1. As text: Encode gives ids inside the vocabulary, and for valid UTF-8 without U+2581 ("▁", which decodes as a
//    space) Decode(Encode(text)) == text: the model normalizes nothing and byte fallback covers every character.
// 2. As ids (each 2 bytes little-endian, modulo the vocabulary) and the ids from step 1: fed one by one to an
//    IncrementalDetokenizer. Every delta Push and Flush return is valid UTF-8, their concatenation is text(), and
//    it equals Decode of the whole sequence. A violation aborts (libFuzzer keeps the input).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "base/utf8.h"
#include "engine/text/tokenizer.h"
#include "fuzz/fuzz_util.h"

namespace llama {
namespace {

std::string IdsText(const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids) absl::StrAppend(&out, id, " ");
  return out;
}

void CheckDetokenizer(const Tokenizer& tokenizer, const std::vector<int32_t>& ids) {
  IncrementalDetokenizer detokenizer(&tokenizer);
  std::string streamed;
  for (size_t i = 0; i <= ids.size(); ++i) {
    const std::string delta = i < ids.size() ? detokenizer.Push(ids[i]) : detokenizer.Flush();
    if (!utf8::IsValid(delta)) {
      fuzz::Fail(absl::StrCat("delta ", i, " is not valid UTF-8: '", absl::CHexEscape(delta), "'; ids ", IdsText(ids)));
    }
    streamed += delta;
  }
  if (streamed != detokenizer.text()) fuzz::Fail("the deltas do not concatenate to text(); ids " + IdsText(ids));
  const std::string decoded = tokenizer.Decode(ids);
  if (streamed != decoded) {
    fuzz::Fail(absl::StrCat("streamed '", absl::CHexEscape(streamed), "' != Decode '", absl::CHexEscape(decoded),
                            "'; ids ", IdsText(ids)));
  }
}

}  // namespace
}  // namespace llama

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const llama::Tokenizer& tokenizer = llama::fuzz::FuzzTokenizer();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::vector<int32_t> encoded = tokenizer.Encode(text);
  for (int32_t id : encoded) {
    if (id < 0 || id >= tokenizer.vocab_size()) llama::fuzz::Fail(absl::StrCat("Encode gave id ", id));
  }
  if (llama::utf8::IsValid(text) && text.find("\xE2\x96\x81") == std::string::npos) {
    const std::string decoded = tokenizer.Decode(encoded);
    if (decoded != text) {
      llama::fuzz::Fail(absl::StrCat("Decode(Encode(text)) '", absl::CHexEscape(decoded), "' != '",
                                     absl::CHexEscape(text), "'"));
    }
  }
  llama::CheckDetokenizer(tokenizer, encoded);
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size; i += 2) {
    ids.push_back(static_cast<int32_t>((data[i] | (data[i + 1] << 8)) % tokenizer.vocab_size()));
  }
  llama::CheckDetokenizer(tokenizer, ids);
  return 0;
}
