// DeviceBuffer: one cudaMalloc'd allocation, freed when the owner goes away. Move-only, so a buffer has exactly
// one owner and can never be freed twice.
#pragma once

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"

namespace llama::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      Reset();
      ptr_ = std::exchange(other.ptr_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }

  // bytes == 0 gives an empty buffer (nullptr). Out of device memory is RESOURCE_EXHAUSTED.
  static absl::StatusOr<DeviceBuffer> Allocate(int64_t bytes);

  // Grows (never shrinks) to at least `bytes`, dropping the old contents. For per-step scratch space.
  absl::Status Reserve(int64_t bytes);

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  int64_t bytes() const { return bytes_; }
  bool empty() const { return ptr_ == nullptr; }

 private:
  void Reset();

  void* ptr_ = nullptr;
  int64_t bytes_ = 0;
};

}  // namespace llama::cuda
