// Checkpoint: the tensors of a Hugging Face model directory, from model.safetensors or from the shards listed in
// model.safetensors.index.json ({"weight_map": {tensor name: shard file}}). Each shard is memory-mapped and
// validated once; tensors are read (widened to fp32) on demand.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/safetensors.h"

namespace llama {

class Checkpoint {
 public:
  static absl::StatusOr<Checkpoint> Open(const std::string& model_dir);

  // nullptr when the checkpoint has no such tensor.
  const SafetensorsTensorInfo* Find(const std::string& name) const;
  // The tensor as fp32, after checking its shape is exactly `shape`. Errors name the tensor and both shapes.
  absl::StatusOr<std::vector<float>> Read(const std::string& name, const std::vector<int64_t>& shape) const;
  std::vector<std::string> TensorNames() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;  // tensor name -> the file holding it
};

std::string ShapeToString(const std::vector<int64_t>& shape);  // "[a, b]"

}  // namespace llama
