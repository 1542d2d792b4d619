// DummyWeightSource: random weights of a named shape (model_shapes.h), generated row by row on demand, so a
// llama-2-7b-shape model can be loaded into any storage type (e.g. the CPU backend's q8_0) without a checkpoint and
// without its fp32 copy ever existing.
//
// Values: every element of a matrix is a pure function of (seed, tensor name, row, column): uniform in
// [-0.02·√3, 0.02·√3) (std 0.02, as the CUDA backend's dummy weights and MakeRandomWeights), from a counter-based
// SplitMix64 draw; norms are exactly 1. So two sources with the same seed give the same bits, whatever rows are
// read in whatever order or from however many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/model/weight_source.h"

namespace llama {

class DummyWeightSource : public WeightSource {
 public:
  // The tensors ModelTensorSpecs(config) lists (lm_head unless tie_word_embeddings).
  DummyWeightSource(const ModelConfig& config, uint64_t seed);
  // NamedModelConfig(shape_name): INVALID_ARGUMENT for an unknown name.
  static absl::StatusOr<std::unique_ptr<DummyWeightSource>> Create(const std::string& shape_name, uint64_t seed);

  const ModelConfig& config() const override { return config_; }
  absl::StatusOr<TensorInfo> Info(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row_begin, int64_t row_end, float* out) const override;

 private:
  struct Tensor {
    TensorInfo info;
    uint64_t key = 0;   // seed and name hashed
    bool norm = false;  // a vector of ones
  };
  ModelConfig config_;
  absl::flat_hash_map<std::string, Tensor> tensors_;
};

}  // namespace llama
