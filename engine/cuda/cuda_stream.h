// CudaStream: an owned non-blocking CUDA stream, destroyed with its owner. Move-only.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "absl/status/statusor.h"
#include "engine/cuda/cuda_check.h"

namespace llama::cuda {

class CudaStream {
 public:
  static absl::StatusOr<CudaStream> Create() {
    CudaStream s;
    CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s.stream_, cudaStreamNonBlocking));
    return s;
  }
  CudaStream() = default;
  ~CudaStream() {
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  CudaStream(CudaStream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  CudaStream& operator=(CudaStream&& o) noexcept {
    if (this != &o) {
      if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
      stream_ = std::exchange(o.stream_, nullptr);
    }
    return *this;
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

}  // namespace llama::cuda
