// The model a --model path names, as a WeightSource: a Hugging Face model directory (config.json +
// model.safetensors or shards: Checkpoint) or a GGUF file (GgufWeightSource). Nothing is read but headers until a
// backend reads rows.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/weight_source.h"

namespace llama {

// A directory is a Hugging Face model directory; any other existing file is read as GGUF (a file that is not
// one fails on its magic). NOT_FOUND when the path does not exist. Errors start with the path.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const std::string& model_path);

// Whether model_path names a file rather than a model directory (the GGUF case).
bool IsModelFile(const std::string& model_path);

}  // namespace llama
