#include "engine/cuda/gemm.h"

#include "engine/cuda/cuda_check.h"

namespace llama::cuda {

absl::StatusOr<CublasHandle> CublasHandle::Create(cudaStream_t stream, bool allow_tf32) {
  CublasHandle h;
  CUDA_RETURN_IF_ERROR(cublasCreate(&h.handle_));
  h.allow_tf32_ = allow_tf32;
  CUDA_RETURN_IF_ERROR(cublasSetStream(h.handle_, stream));
  // Default math: no TF32 for fp32 GEMMs unless the compute type asks for it (see Gemm).
  CUDA_RETURN_IF_ERROR(cublasSetMathMode(h.handle_, CUBLAS_DEFAULT_MATH));
  return h;
}

CublasHandle::~CublasHandle() {
  if (handle_ != nullptr) (void)cublasDestroy(handle_);
}

CublasHandle& CublasHandle::operator=(CublasHandle&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) (void)cublasDestroy(handle_);
    handle_ = std::exchange(o.handle_, nullptr);
    allow_tf32_ = o.allow_tf32_;
  }
  return *this;
}

absl::Status Gemm(const CublasHandle& handle, const void* x, const void* w, DType dtype, float* y, int m, int n,
                  int k, float beta) {
  if (m == 0 || n == 0) return absl::OkStatus();
  // cuBLAS is column-major: a row-major [m, n] y is a column-major [n, m] yᵀ = w · xᵀ, where the row-major
  // w [n, k] read column-major is wᵀ [k, n] (so op T) and row-major x [m, k] is xᵀ [k, m] (op N).
  const float alpha = 1.0f;
  const cudaDataType_t type = ToCudaDataType(dtype);
  // CUBLAS_COMPUTE_32F under CUBLAS_DEFAULT_MATH never uses TF32; FAST_TF32 opts in when allowed.
  const cublasComputeType_t compute =
      dtype == DType::kF32 && handle.allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  CUDA_RETURN_IF_ERROR(cublasGemmEx(handle.get(), CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, type, k, x, type, k,
                                    &beta, y, CUDA_R_32F, n, compute, CUBLAS_GEMM_DEFAULT));
  return absl::OkStatus();
}

}  // namespace llama::cuda
