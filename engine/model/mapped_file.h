// MappedFile: a whole file memory-mapped read-only (MAP_PRIVATE), the storage under the safetensors and GGUF
// readers. Weights are read straight from the mapping; once a backend has converted a tensor, ReleasePages drops
// its pages from the process (madvise MADV_DONTNEED: clean file pages leave the resident set at once and are read
// back from the page cache or the file if touched again), so loading never holds the file and the converted copy
// resident together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace llama {

class MappedFile {
 public:
  // NOT_FOUND when missing, INVALID_ARGUMENT when not a readable regular file, RESOURCE_EXHAUSTED when the address
  // space cannot hold the mapping.
  static absl::StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  absl::Span<const uint8_t> bytes() const { return absl::MakeConstSpan(data_, size_); }

  // Drops the process's pages covering bytes [begin, end) of the file (rounded out to whole pages; a page shared
  // with a neighbouring tensor is simply read again when that one is touched). Thread-safe; never changes what
  // the mapping reads.
  void ReleasePages(size_t begin, size_t end) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace llama
