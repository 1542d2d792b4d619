#include "engine/model/dummy_weight_source.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/model_shapes.h"

namespace llama {
namespace {

// FNV-1a: the tensor name's part of the key (stable across runs and builds, unlike std::hash).
uint64_t HashName(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// SplitMix64's finaliser (engine/counter_rng.h has the sampler's copy; engine/model sits below engine/).
uint64_t SplitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr float kHalfWidth = 0.034641016f;  // 0.02 · √3: std 0.02

}  // namespace

DummyWeightSource::DummyWeightSource(const ModelConfig& config, uint64_t seed) : config_(config) {
  for (const TensorSpec& spec : ModelTensorSpecs(config)) {
    Tensor t;
    t.info.shape = spec.shape;
    t.info.stored = StoredDtype::kF32;
    t.key = SplitMix64(SplitMix64(seed) ^ HashName(spec.name));
    t.norm = spec.shape.size() == 1;
    tensors_[spec.name] = std::move(t);
  }
}

absl::StatusOr<std::unique_ptr<DummyWeightSource>> DummyWeightSource::Create(const std::string& shape_name,
                                                                            uint64_t seed) {
  ASSIGN_OR_RETURN(ModelConfig config, NamedModelConfig(shape_name));
  return std::make_unique<DummyWeightSource>(config, seed);
}

absl::StatusOr<TensorInfo> DummyWeightSource::Info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return absl::NotFoundError(absl::StrCat("no tensor ", name));
  return it->second.info;
}

absl::Status DummyWeightSource::ReadRows(const std::string& name, int64_t row_begin, int64_t row_end,
                                         float* out) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return absl::NotFoundError(absl::StrCat("no tensor ", name));
  const Tensor& t = it->second;
  if (row_begin < 0 || row_end < row_begin || row_end > t.info.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("rows [", row_begin, ", ", row_end, ") of ", name, " outside [0, ",
                                                   t.info.rows(), ")"));
  }
  const int64_t cols = t.info.cols();
  if (t.norm) {
    std::fill(out, out + (row_end - row_begin) * cols, 1.0f);
    return absl::OkStatus();
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint64_t row_key = SplitMix64(t.key ^ static_cast<uint64_t>(r));
    float* dst = out + (r - row_begin) * cols;
    for (int64_t k = 0; k < cols; ++k) {
      // Top 24 bits: an exact float in [0, 1), mapped onto [-w, w).
      const float u = static_cast<float>(SplitMix64(row_key + static_cast<uint64_t>(k)) >> 40) * (1.0f / 16777216.0f);
      dst[k] = (2.0f * u - 1.0f) * kHalfWidth;
    }
  }
  return absl::OkStatus();
}

}  // namespace llama
