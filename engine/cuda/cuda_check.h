// One macro turns every CUDA runtime call, cuBLAS call and kernel launch into an absl::Status that keeps the
// failing expression, file and line. A failure returns from the enclosing function (which must return
// absl::Status or absl::StatusOr): it fails the step, never the process.
//
//   CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(...));
//   CUDA_RETURN_IF_ERROR(cublasGemmEx(...));
//   my_kernel<<<grid, block, 0, stream>>>(...);
//   CUDA_RETURN_IF_ERROR(cudaGetLastError());   // launch configuration errors
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace llama::cuda {

inline absl::Status ToStatus(cudaError_t err, const char* expr, const char* file, int line) {
  if (err == cudaSuccess) return absl::OkStatus();
  // Out of memory is a resource limit the caller may react to; everything else is internal.
  const absl::StatusCode code =
      err == cudaErrorMemoryAllocation ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(expr, " failed at ", file, ":", line, ": ", cudaGetErrorName(err), " (",
                                         cudaGetErrorString(err), ")"));
}

inline absl::Status ToStatus(cublasStatus_t err, const char* expr, const char* file, int line) {
  if (err == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  const absl::StatusCode code =
      err == CUBLAS_STATUS_ALLOC_FAILED ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kInternal;
  return absl::Status(code, absl::StrCat(expr, " failed at ", file, ":", line, ": ", cublasGetStatusName(err), " (",
                                         cublasGetStatusString(err), ")"));
}

}  // namespace llama::cuda

#define CUDA_RETURN_IF_ERROR(expr)                                                                  \
  do {                                                                                              \
    ::absl::Status _cuda_status = ::llama::cuda::ToStatus((expr), #expr, __FILE__, __LINE__);        \
    if (!_cuda_status.ok()) return _cuda_status;                                                    \
  } while (0)
