#include "engine/cuda/dtype.h"

#include "absl/strings/str_cat.h"

namespace llama::cuda {

absl::StatusOr<DType> ParseDType(const std::string& name) {
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "fp16" || name == "f16" || name == "float16") return DType::kF16;
  if (name == "fp32" || name == "f32" || name == "float32") return DType::kF32;
  return absl::InvalidArgumentError(absl::StrCat("--dtype: '", name, "' is not one of bf16, fp16, fp32"));
}

}  // namespace llama::cuda
