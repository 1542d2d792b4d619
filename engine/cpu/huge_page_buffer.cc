#include "engine/cpu/huge_page_buffer.h"

#include <sys/mman.h>

#include <cstdint>
#include <utility>

namespace llama {
namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

HugePageBuffer::HugePageBuffer(size_t num_floats) {
  const size_t bytes = (num_floats * sizeof(float) + kHugePage - 1) / kHugePage * kHugePage;
  if (bytes == 0) return;
  // Map one huge page more than needed, then trim both ends so the buffer starts on a 2 MiB boundary.
  void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + bytes + kHugePage;
  if (end > aligned + bytes) munmap(reinterpret_cast<void*>(aligned + bytes), end - (aligned + bytes));
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // a hint: failure leaves 4 KiB pages
#endif
  data_ = reinterpret_cast<float*>(aligned);
  num_floats_ = num_floats;
  mapped_bytes_ = bytes;
}

HugePageBuffer::~HugePageBuffer() { Release(); }

HugePageBuffer::HugePageBuffer(HugePageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      num_floats_(std::exchange(other.num_floats_, 0)),
      mapped_bytes_(std::exchange(other.mapped_bytes_, 0)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    num_floats_ = std::exchange(other.num_floats_, 0);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
  }
  return *this;
}

void HugePageBuffer::Release() {
  if (data_ != nullptr) munmap(data_, mapped_bytes_);
  data_ = nullptr;
  num_floats_ = 0;
  mapped_bytes_ = 0;
}

}  // namespace llama
