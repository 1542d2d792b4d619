// Our own GGUF writer (ggml's docs/gguf.md, version 3 or 2, little-endian), for conversion (`llama-chat convert
// --to_gguf`) and tests; never linked into the server. Two layers:
//   GgufWriter: any metadata (every value type, nested arrays) and tensors, laid out as the format says: tensor
//     offsets aligned to general.alignment (default 32), the data section padded to it; tensor bytes are produced
//     one tensor at a time while writing, so a large model never sits in memory whole.
//   LlamaGguf / WriteLlamaGguf: a model from any WeightSource in llama.cpp's conventions (engine/model/gguf_llama.h:
//     names, q/k rows permuted to the interleaved order, matrices stored as {cols, rows}), the llama metadata and
//     the tokenizer's vocab (tokenizer.ggml.*), matrices in F32/F16/BF16/Q8_0/Q4_0 (ggml_quantize.h), norms F32.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model/ggml_types.h"
#include "engine/model/gguf.h"
#include "engine/model/weight_source.h"
#include "engine/text/sentencepiece_vocab.h"

namespace llama {

// A metadata value to write.
struct GgufWriteValue {
  GgufValueType type = GgufValueType::kUint32;
  uint64_t bits = 0;  // a scalar's little-endian bits (integers, bool, float32 / float64 bit patterns)
  std::string str;    // kString
  GgufValueType element_type = GgufValueType::kUint32;  // kArray
  std::vector<GgufWriteValue> elements;                 // kArray

  static GgufWriteValue Scalar(GgufValueType type, uint64_t bits);
  static GgufWriteValue U32(uint32_t v) { return Scalar(GgufValueType::kUint32, v); }
  static GgufWriteValue I32(int32_t v) { return Scalar(GgufValueType::kInt32, static_cast<uint32_t>(v)); }
  static GgufWriteValue F32(float v);
  static GgufWriteValue Bool(bool v) { return Scalar(GgufValueType::kBool, v ? 1 : 0); }
  static GgufWriteValue Str(std::string v);
  static GgufWriteValue Array(GgufValueType element_type, std::vector<GgufWriteValue> elements);
};

class GgufWriter {
 public:
  // Produces a tensor's bytes (exactly its size for its dims and type) when the writer gets to it.
  using TensorBytes = std::function<absl::StatusOr<std::string>()>;
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;  // ggml order, dims[0] contiguous
    GgmlType type = GgmlType::kF32;
    TensorBytes bytes;
  };

  explicit GgufWriter(uint32_t version = 3, uint32_t alignment = kGgufDefaultAlignment);

  // Adds or replaces (keeping its place) a key; Remove drops one.
  void Set(const std::string& key, GgufWriteValue value);
  void Remove(const std::string& key);
  void AddTensor(Tensor tensor);
  void RemoveTensor(const std::string& name);
  Tensor* FindTensor(const std::string& name);  // nullptr when absent

  // Writes the file (via a temporary renamed into place). general.alignment is written when the alignment is not
  // the default 32 (unless set explicitly). INVALID_ARGUMENT when a tensor's bytes do not match its dims and type.
  absl::Status Write(const std::string& path) const;

 private:
  uint32_t version_;
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufWriteValue>> metadata_;
  std::vector<Tensor> tensors_;
};

struct LlamaGgufOptions {
  GgmlType matrix_type = GgmlType::kF32;  // F32, F16, BF16, Q8_0 or Q4_0: every matrix (embeddings included)
  uint32_t version = 3;
  uint32_t alignment = kGgufDefaultAlignment;
  std::string name;  // general.name, when set
};

// The tokenizer.ggml.* keys of a SentencePiece vocab: model "llama", tokens, scores, token_type, the special ids,
// add_space_prefix.
void SetLlamaTokenizer(const SentencePieceVocab& vocab, GgufWriter* writer);

// Parses --gguf_type: f32, f16, bf16, q8_0, q4_0.
absl::StatusOr<GgmlType> ParseGgufMatrixType(const std::string& name);

// The llama GGUF of a causal LM (a reward model is INVALID_ARGUMENT: GGUF has no place for its score head).
absl::StatusOr<GgufWriter> LlamaGguf(const WeightSource& source, const SentencePieceVocab& vocab,
                                     const LlamaGgufOptions& options);
absl::Status WriteLlamaGguf(const std::string& path, const WeightSource& source, const SentencePieceVocab& vocab,
                            const LlamaGgufOptions& options);

}  // namespace llama
