// SwiGLU activation: out = silu(gate) * up. CPU twin: the CPU backend's silu-mul.
#pragma once

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

// gate_up: [num_tokens, 2 * intermediate] fp32, gate in columns [0, I), up in [I, 2I) (the fused gate/up GEMM's
// output); out: [num_tokens, intermediate] in out_dtype (the down projection's input type).
absl::Status SiluMul(const float* gate_up, int num_tokens, int intermediate, void* out, DType out_dtype,
                     cudaStream_t stream);

}  // namespace llama::cuda
