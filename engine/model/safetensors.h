// Safetensors files: a memory-mapped, fully validated reader (F32/F16/BF16, widened to fp32 on access) and an F32
// writer.
//
// Format: 8 bytes little-endian u64 N, then N bytes of a UTF-8 JSON object
//   {"<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
// then the data buffer; offsets are relative to the start of the data buffer. The reader accepts a file only when
// every tensor's byte range matches its dtype and shape and the ranges tile the data buffer exactly (no gaps, no
// overlaps), so a corrupt or truncated file is an error naming the broken rule and tensor, never a wrong weight.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model/mapped_file.h"

namespace llama {

enum class SafetensorsDtype { kF32, kF16, kBF16 };

struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0;  // byte offsets into the data buffer, [begin, end)
  int64_t end = 0;

  int64_t num_elements() const;
};

const char* SafetensorsDtypeName(SafetensorsDtype dtype);

// Widening conversions (exact: every F16 and BF16 value is representable in fp32).
float HalfToFloat(uint16_t bits);
float BFloat16ToFloat(uint16_t bits);

class SafetensorsFile {
 public:
  // Maps the file and validates the whole header. Errors are INVALID_ARGUMENT (NOT_FOUND if the file is missing,
  // RESOURCE_EXHAUSTED if it cannot be mapped).
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  // Sorted by data offset.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const SafetensorsTensorInfo* Find(const std::string& name) const;
  // The tensor's values widened to fp32, row-major. NOT_FOUND when absent.
  absl::StatusOr<std::vector<float>> ReadF32(const std::string& name) const;
  // Elements [begin, end) of one of this file's tensors (flat, row-major) widened to fp32 into out[end - begin].
  // The range must lie inside the tensor (CHECKed: callers check rows against the shape).
  void ReadElementsF32(const SafetensorsTensorInfo& info, int64_t begin, int64_t end, float* out) const;
  // Drops the tensor's pages from the process (MappedFile::ReleasePages).
  void ReleasePages(const SafetensorsTensorInfo& info) const;

 private:
  SafetensorsFile() = default;

  MappedFile file_;
  size_t data_offset_ = 0;  // where the data buffer starts in the file
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Validates a complete file image (header + data buffer) and returns its tensors sorted by offset; data_offset
// receives where the data buffer starts. Exposed for tests; Open() uses it on the mapped bytes.
absl::StatusOr<std::vector<SafetensorsTensorInfo>> ParseSafetensorsHeader(
    absl::Span<const uint8_t> file, const std::string& path, size_t* data_offset,
    std::map<std::string, std::string>* metadata);

struct SafetensorsWriteTensor {
  std::string name;
  std::vector<int64_t> shape;
  absl::Span<const float> data;  // row-major, product(shape) values
};

// Writes an F32 safetensors file (via a temporary file renamed into place). The header is padded with spaces to a
// multiple of 8 bytes so the data buffer is 8-byte aligned, as the format recommends.
absl::Status WriteSafetensors(const std::string& path, absl::Span<const SafetensorsWriteTensor> tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace llama
