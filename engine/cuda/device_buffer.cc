#include "engine/cuda/device_buffer.h"

#include <cuda_runtime.h>

#include "engine/cuda/cuda_check.h"

namespace llama::cuda {

absl::StatusOr<DeviceBuffer> DeviceBuffer::Allocate(int64_t bytes) {
  if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("DeviceBuffer: negative size ", bytes));
  DeviceBuffer buffer;
  if (bytes == 0) return buffer;
  CUDA_RETURN_IF_ERROR(cudaMalloc(&buffer.ptr_, static_cast<size_t>(bytes)));
  buffer.bytes_ = bytes;
  return buffer;
}

absl::Status DeviceBuffer::Reserve(int64_t bytes) {
  if (bytes <= bytes_) return absl::OkStatus();
  Reset();
  auto fresh = Allocate(bytes);
  if (!fresh.ok()) return fresh.status();
  *this = std::move(*fresh);
  return absl::OkStatus();
}

void DeviceBuffer::Reset() {
  // cudaFree can only fail for a pointer we never allocated or a dead context; nothing useful to do then.
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace llama::cuda
