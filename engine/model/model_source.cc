#include "engine/model/model_source.h"

#include <filesystem>
#include <new>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/checkpoint.h"
#include "engine/model/gguf_source.h"

namespace llama {

bool IsModelFile(const std::string& model_path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(model_path, ec);
}

namespace {

absl::StatusOr<std::unique_ptr<WeightSource>> Open(const std::string& model_path) {
  std::error_code ec;
  if (std::filesystem::is_directory(model_path, ec)) {
    ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Open(model_path));
    return std::unique_ptr<WeightSource>(std::move(ckpt));
  }
  if (!std::filesystem::exists(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": no such model directory or GGUF file"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<GgufWeightSource> gguf, GgufWeightSource::Open(model_path));
  return std::unique_ptr<WeightSource>(std::move(gguf));
}

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const std::string& model_path) {
  // Headers are small and every count in them is bounded by the file size, but a huge vocab or tensor table may
  // still not fit: a loader that runs out of memory says so.
  try {
    return Open(model_path);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(model_path, ": out of memory reading the model's headers"));
  }
}

}  // namespace llama
