// Element types the CUDA backend stores weights and the KV cache in. Activations between kernels stay fp32
// except the inputs of GEMMs, which take the weights' type (cuBLAS needs A and B of one type).
#pragma once

#include <library_types.h>

#include <string>

#include "absl/status/statusor.h"

namespace llama::cuda {

enum class DType { kF32, kF16, kBF16 };

inline int DTypeBytes(DType t) { return t == DType::kF32 ? 4 : 2; }

inline cudaDataType_t ToCudaDataType(DType t) {
  switch (t) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

inline std::string DTypeName(DType t) {
  switch (t) {
    case DType::kF32: return "fp32";
    case DType::kF16: return "fp16";
    case DType::kBF16: return "bf16";
  }
  return "?";
}

// "bf16" (default), "fp16"/"f16"/"float16", "fp32"/"f32"/"float32".
absl::StatusOr<DType> ParseDType(const std::string& name);

}  // namespace llama::cuda
