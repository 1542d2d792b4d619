// GgufWeightSource: a llama GGUF file (gguf.h) as a WeightSource. The config comes from the llama metadata
// (GgufModelConfig), tensors are found under their GGUF names (gguf_llama.h) and read row by row straight from the
// mapping: q/k rows un-permuted from llama.cpp's interleaved order back to rotate-half, F16/BF16 widened exactly,
// Q8_0/Q4_0 dequantized (d · q in fp32). Info's stored type is the file's, so a backend may keep Q8_0 as it is.
//
// Open checks every tensor the config needs before anything is read: present (error names the GGUF and the HF
// name), a readable type (F32, F16, BF16, Q8_0, Q4_0), and the exact shape. Extra tensors (e.g. rope_freqs) are
// validated by the file reader and otherwise ignored.
#pragma once

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/model/gguf.h"
#include "engine/model/weight_source.h"

namespace llama {

class GgufWeightSource : public WeightSource {
 public:
  static absl::StatusOr<std::unique_ptr<GgufWeightSource>> Open(const std::string& path);

  const ModelConfig& config() const override { return config_; }
  absl::StatusOr<TensorInfo> Info(const std::string& name) const override;
  absl::Status ReadRows(const std::string& name, int64_t row_begin, int64_t row_end, float* out) const override;
  void Release(const std::string& name) const override;

  const GgufFile& file() const { return file_; }

 private:
  struct Entry {
    const GgufTensorInfo* tensor;
    TensorInfo info;    // HF shape [rows, cols] (or [n]) and stored type
    int head_dim = 0;   // q/k projections: rows come in interleaved heads of head_dim; 0: rows in order
    int64_t row_bytes;  // bytes of one stored row of cols values
  };
  explicit GgufWeightSource(GgufFile file) : file_(std::move(file)) {}
  absl::Status Index();

  GgufFile file_;
  ModelConfig config_;
  absl::flat_hash_map<std::string, Entry> entries_;  // HF name -> the tensor holding it
};

}  // namespace llama
