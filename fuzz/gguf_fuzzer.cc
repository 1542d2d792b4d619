// GGUF loading (engine/model/gguf*.h, engine/text/gguf_vocab.h): the input is a whole GGUF file. Checked:
// - GgufFile::Open accepts or refuses with INVALID_ARGUMENT; on an accepted file every metadata value is walked
//   (arrays decoded element by element, nested ones recursively), and every tensor's bytes lie inside the file.
// - The llama steps on top: GgufModelConfig (an accepted config passes Validate), GgufWeightSource::Open and every
//   tensor it indexes read in full; the vocab (GgufSentencePieceVocab) serialized to a ModelProto that parses back
//   to the same pieces, then loaded as a Tokenizer that encodes and decodes a fixed text.
// Each refusal must be INVALID_ARGUMENT (or NOT_FOUND for an absent key): never a crash, never an allocation
// larger than a small multiple of the input (ASan's allocator limit, -rss_limit_mb, catches that).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_llama.h"
#include "engine/model/gguf_source.h"
#include "engine/model/weights.h"
#include "engine/text/gguf_vocab.h"
#include "engine/text/sentencepiece_vocab.h"
#include "engine/text/tokenizer.h"
#include "fuzz/fuzz_util.h"

namespace llama {
namespace {

void ExpectRefusal(const absl::Status& status, const char* what) {
  if (!absl::IsInvalidArgument(status) && !absl::IsNotFound(status)) {
    fuzz::Fail(absl::StrCat(what, ": ", status.ToString()));
  }
}

// Walks one value; returns a checksum so the reads cannot be optimised away.
uint64_t Walk(const GgufValue& value, int depth) {
  if (depth > 8) fuzz::Fail("an accepted array nests deeper than 8");
  uint64_t sum = value.uint_value ^ static_cast<uint64_t>(value.int_value) ^ value.string_value.size();
  if (value.type != GgufValueType::kArray) return sum;
  if (value.element_type == GgufValueType::kString) {
    const std::vector<std::string_view> strings = GgufArrayStrings(value);
    if (strings.size() != value.array_size) fuzz::Fail("GgufArrayStrings size");
    for (std::string_view s : strings) sum += s.size() + (s.empty() ? 0 : static_cast<uint8_t>(s.back()));
  } else if (value.element_type == GgufValueType::kArray) {
    for (const GgufValue& element : GgufArrayElements(value)) sum += Walk(element, depth + 1);
  } else {
    for (uint64_t i = 0; i < value.array_size; ++i) sum += static_cast<uint64_t>(GgufArrayNumber(value, i) != 0);
  }
  return sum;
}

void CheckWeights(const std::string& path) {
  auto source = GgufWeightSource::Open(path);
  if (!source.ok()) {
    ExpectRefusal(source.status(), "GgufWeightSource::Open");
    return;
  }
  for (const TensorSpec& spec : ModelTensorSpecs((*source)->config())) {
    auto info = (*source)->Info(spec.name);
    if (!info.ok()) fuzz::Fail("an indexed tensor has no Info: " + spec.name);
    std::vector<float> rows(static_cast<size_t>(info->num_elements()));
    absl::Status read = (*source)->ReadRows(spec.name, 0, info->rows(), rows.data());
    if (!read.ok()) fuzz::Fail("ReadRows of an indexed tensor " + spec.name + ": " + read.ToString());
    (*source)->Release(spec.name);
  }
}

void CheckVocab(const GgufFile& file) {
  auto vocab = GgufSentencePieceVocab(file);
  if (!vocab.ok()) {
    ExpectRefusal(vocab.status(), "GgufSentencePieceVocab");
    return;
  }
  const std::string proto = SerializeModelProto(*vocab);
  auto parsed = ParseModelProto(proto);
  if (!parsed.ok()) fuzz::Fail("SerializeModelProto output does not parse: " + parsed.status().ToString());
  if (parsed->pieces.size() != vocab->pieces.size()) fuzz::Fail("piece count changed through the ModelProto");
  for (size_t i = 0; i < vocab->pieces.size(); ++i) {
    const VocabPiece& a = vocab->pieces[i];
    const VocabPiece& b = parsed->pieces[i];
    if (a.piece != b.piece || a.type != b.type || !(a.score == b.score || (a.score != a.score && b.score != b.score))) {
      fuzz::Fail(absl::StrCat("piece ", i, " changed through the ModelProto"));
    }
  }
  if (parsed->unk_id != vocab->unk_id || parsed->bos_id != vocab->bos_id || parsed->eos_id != vocab->eos_id ||
      parsed->pad_id != vocab->pad_id) {
    fuzz::Fail("special ids changed through the ModelProto");
  }
  auto tokenizer = Tokenizer::FromSerializedModel(proto, "fuzz (GGUF vocab)");
  if (!tokenizer.ok()) {
    ExpectRefusal(tokenizer.status(), "Tokenizer::FromSerializedModel");
    return;
  }
  const std::vector<int32_t> ids = (*tokenizer)->Encode("Hello world! \xC3\xA9\xE2\x82\xAC 123");
  for (int32_t id : ids) {
    if (id < 0 || id >= (*tokenizer)->vocab_size()) fuzz::Fail(absl::StrCat("Encode gave id ", id));
  }
  (void)(*tokenizer)->Decode(ids);
}

}  // namespace
}  // namespace llama

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  llama::fuzz::MemFile file(std::string_view(reinterpret_cast<const char*>(data), size));
  auto gguf = llama::GgufFile::Open(file.path());
  if (!gguf.ok()) {
    if (!absl::IsInvalidArgument(gguf.status())) llama::fuzz::Fail("GgufFile::Open: " + gguf.status().ToString());
    return 0;
  }
  uint64_t sum = 0;
  for (const auto& [key, value] : gguf->metadata()) sum += llama::Walk(value, 0) + key.size();
  for (const llama::GgufTensorInfo& t : gguf->tensors()) {
    if (gguf->data_offset() + t.offset + static_cast<uint64_t>(t.num_bytes) > size) {
      llama::fuzz::Fail(absl::StrCat("tensor ", t.name, " ends past the file"));
    }
    // The first and last byte: ASan would flag a range outside the mapping only when touched.
    if (t.num_bytes > 0) sum += gguf->TensorData(t)[0] + gguf->TensorData(t)[t.num_bytes - 1];
  }
  auto config = llama::GgufModelConfig(*gguf);
  if (config.ok()) {
    if (!config->Validate().ok()) llama::fuzz::Fail("an accepted GGUF config fails Validate");
    llama::CheckWeights(file.path());
  } else {
    llama::ExpectRefusal(config.status(), "GgufModelConfig");
  }
  llama::CheckVocab(*gguf);
  return static_cast<int>(sum & 0);
}
