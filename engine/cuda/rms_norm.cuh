// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, accumulated in fp32. CPU twin: the CPU backend's RmsNorm.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

// x: [*, dim] fp32; weight: [dim] fp32; out: [num_rows, dim] in out_dtype (the next GEMM's input type).
// Row r of out normalises x row (row_index ? row_index[r] : r): the final norm gathers only the rows that need
// logits, so the lm_head GEMM runs on num_outputs rows instead of num_tokens.
absl::Status RmsNorm(const float* x, const float* weight, const int32_t* row_index, int num_rows, int dim,
                     float eps, void* out, DType out_dtype, cudaStream_t stream);

}  // namespace llama::cuda
