// Checkpoint: a Hugging Face model directory as a WeightSource: config.json, and the tensors of model.safetensors
// or of the shards listed in model.safetensors.index.json ({"weight_map": {tensor name: shard file}}). Each file is
// memory-mapped and validated once (SafetensorsFile); rows are widened to fp32 on demand straight from the mapping
// and Release drops a tensor's pages, so reading a model through it never holds a second full copy.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/config.h"
#include "engine/model/safetensors.h"
#include "engine/model/weight_source.h"

namespace llama {

class Checkpoint : public WeightSource {
 public:
  // Errors name the directory and the file: NOT_FOUND (no config.json, no checkpoint file), INVALID_ARGUMENT (a
  // malformed file), RESOURCE_EXHAUSTED (a file that cannot be mapped).
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& model_dir);

  const ModelConfig& config() const override { return config_; }
  // The file's shape (any rank; CheckWeightShapes names one that is not the config's) and dtype.
  absl::StatusOr<TensorInfo> Info(const std::string& name) const override;
  // Rows of a 1-D or 2-D tensor; a tensor of another rank is INVALID_ARGUMENT.
  absl::Status ReadRows(const std::string& name, int64_t row_begin, int64_t row_end, float* out) const override;
  void Release(const std::string& name) const override;

  // nullptr when the checkpoint has no such tensor.
  const SafetensorsTensorInfo* Find(const std::string& name) const;
  std::vector<std::string> TensorNames() const;

 private:
  Checkpoint() = default;

  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;  // tensor name -> the file holding it
};

std::string ShapeToString(const std::vector<int64_t>& shape);  // "[a, b]"

}  // namespace llama
