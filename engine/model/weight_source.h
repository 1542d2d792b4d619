// WeightSource: a model's tensors read on demand, rows at a time, as fp32. It is the seam between where weights
// come from (in-memory ModelWeights, safetensors or GGUF files, generated dummy weights) and backends that keep
// weights in storage types of their own (the CPU backend's packed f32/bf16/q8_0 panels): a backend converts one
// matrix, or one panel of rows, at a time, so no full fp32 copy of a model exists while it loads.
//
// Names and layout are the Hugging Face Llama ones the engine uses everywhere (weights.h): "model.embed_tokens.weight",
// LayerTensorName(l, "self_attn.q_proj.weight"), ..., "model.norm.weight", "lm_head.weight" (absent when tied),
// "score.weight" and "score.bias" (reward models); q_proj/k_proj rows in rotate-half RoPE order. A tensor is a
// matrix [rows, cols] in row-major order; a vector [n] is one row of n values.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"

namespace llama {

// How a source stores a tensor (what a reader converts from; a backend may use it to pick a lossless path).
enum class StoredDtype { kF32, kF16, kBF16, kQ8_0, kQ4_0 };
const char* StoredDtypeName(StoredDtype dtype);

struct TensorInfo {
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  StoredDtype stored = StoredDtype::kF32;
  int64_t rows() const { return shape.size() == 1 ? 1 : shape[0]; }
  int64_t cols() const { return shape.back(); }
  int64_t num_elements() const { return rows() * cols(); }
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const ModelConfig& config() const = 0;
  // Shape and stored type of `name`; NOT_FOUND when the source has no such tensor.
  virtual absl::StatusOr<TensorInfo> Info(const std::string& name) const = 0;
  // Rows [row_begin, row_end) of `name` as fp32 into out[(row_end - row_begin) * cols]. INVALID_ARGUMENT for a
  // range outside the tensor, NOT_FOUND when absent. Safe to call from several threads at once.
  virtual absl::Status ReadRows(const std::string& name, int64_t row_begin, int64_t row_end, float* out) const = 0;
  // The caller has read all it needs of `name`: a file-backed source may drop the tensor's pages from memory.
  virtual void Release(const std::string& name) const {}
};

// Every tensor the config implies is present with the exact shape (error names the tensor, its shape and the
// expected one): embed_tokens, per layer the norms and the seven matrices, the final norm, lm_head when present,
// and score.weight [num_labels, hidden] (+ optional score.bias [num_labels]) for reward models, which have no lm_head.
absl::Status CheckWeightShapes(const WeightSource& source);

// Whether the source is a reward model (has score.weight) / has an untied lm_head.
bool HasScoreHead(const WeightSource& source);
bool HasLmHead(const WeightSource& source);

// A source over host fp32 ModelWeights: borrowing `weights` (which must outlive it), or owning them, in which case
// Release(name) frees that tensor (so a backend converting tensor by tensor never holds two full copies).
class InMemoryWeightSource : public WeightSource {
 public:
  explicit InMemoryWeightSource(const ModelWeights* weights);
  explicit InMemoryWeightSource(ModelWeights weights);
  const ModelConfig& config() const override { return weights_->config; }
  absl::StatusOr<TensorInfo> Info(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row_begin, int64_t row_end, float* out) const override;
  void Release(const std::string& name) const override;

 private:
  std::unique_ptr<ModelWeights> owned_;  // set by the owning constructor
  const ModelWeights* weights_;
  absl::flat_hash_map<std::string, TensorInfo> infos_;  // the non-empty tensors of *weights_
};

// All of a source's tensors as host fp32 ModelWeights (for backends that take ModelWeights, e.g. CUDA today).
// Shapes are checked first (CheckWeightShapes). RESOURCE_EXHAUSTED when the memory cannot be had.
absl::StatusOr<ModelWeights> MaterializeWeights(const WeightSource& source);

}  // namespace llama
