// cuBLAS GEMMs for the projections: every token of the ragged batch in one call, fp32 accumulation.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <utility>

#include "absl/status/statusor.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

// A cuBLAS handle bound to one stream. Move-only; destroyed with its owner.
class CublasHandle {
 public:
  // allow_tf32: fp32 GEMMs may use TF32 tensor cores. Off for the fp32 parity mode, where the CUDA backend must
  // reproduce the CPU backend's greedy tokens.
  static absl::StatusOr<CublasHandle> Create(cudaStream_t stream, bool allow_tf32);
  CublasHandle() = default;
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  CublasHandle(CublasHandle&& o) noexcept
      : handle_(std::exchange(o.handle_, nullptr)), allow_tf32_(o.allow_tf32_) {}
  CublasHandle& operator=(CublasHandle&& o) noexcept;

  cublasHandle_t get() const { return handle_; }
  bool allow_tf32() const { return allow_tf32_; }

 private:
  cublasHandle_t handle_ = nullptr;
  bool allow_tf32_ = false;
};

// y = x · wᵀ + beta · y, the nn.Linear product.
//   x: [m, k] in dtype (row-major), w: [n, k] in dtype (row-major, the HF weight layout), y: [m, n] fp32.
// beta = 1 adds the product into y: the o_proj and down_proj GEMMs accumulate straight into the residual stream.
absl::Status Gemm(const CublasHandle& handle, const void* x, const void* w, DType dtype, float* y, int m, int n,
                  int k, float beta);

}  // namespace llama::cuda
