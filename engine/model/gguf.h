// GGUF files (ggml's docs/gguf.md), versions 2 and 3, little-endian: a memory-mapped reader that accepts a file
// only when its whole structure is sound, so a corrupt or truncated file is an error naming the broken rule, never
// a wrong weight or a crash.
//
// Layout: magic "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count; the key/value pairs (key: u64 length +
// bytes; u32 value type; the value; strings are u64 length + bytes; arrays are u32 element type + u64 count + the
// elements, nested arrays allowed); the tensor infos (name; u32 n_dims; n_dims u64 dims, dims[0] the contiguous
// one; u32 ggml type; u64 offset into the data section); zero padding to general.alignment (u32, default 32); the
// data section. Every count and length is checked against the bytes left before anything is allocated for it, so
// the file's numbers never drive an allocation larger than (a small multiple of) the file itself.
//
// Rules (each an INVALID_ARGUMENT "<path>: gguf: <rule>"): the 24-byte header present; magic; version 2 or 3;
// tensor and key counts the remaining bytes could hold; keys at most 65535 bytes, no duplicates; known value
// types; strings, arrays and values inside the file; bools 0 or 1; arrays nested at most 8 deep; general.alignment
// a u32 power of two; tensor names at most 64 bytes, no duplicates; 1 to 4 dimensions, each > 0, their product
// without overflow; a known ggml type whose block size divides dims[0]; offsets multiples of the alignment; each
// tensor's bytes inside the data section and no two tensors overlapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model/ggml_types.h"
#include "engine/model/mapped_file.h"

namespace llama {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
const char* GgufValueTypeName(GgufValueType type);

inline constexpr uint64_t kGgufDefaultAlignment = 32;

// One metadata value. Strings and array elements point into the file's mapping: valid while the GgufFile lives.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  uint64_t uint_value = 0;         // kUint8..kUint64; kBool as 0 or 1
  int64_t int_value = 0;           // kInt8..kInt64
  double float_value = 0;          // kFloat32, kFloat64
  std::string_view string_value;   // kString
  // kArray: the element type, the element count and the elements as encoded in the file (validated at Open).
  GgufValueType element_type = GgufValueType::kUint8;
  uint64_t array_size = 0;
  absl::Span<const uint8_t> array_bytes;

  bool is_integer() const;
  bool is_signed() const;  // kInt8..kInt64
};

// An array's elements, decoded one level deep (an element may itself be an array). The array must be one of the
// file's (validated) values. Each element takes a GgufValue (~100 bytes) however small it is in the file: for long
// arrays of strings or numbers use the two accessors below, whose memory stays within the array's own size.
std::vector<GgufValue> GgufArrayElements(const GgufValue& array);
// The elements of an array of strings (views into the mapping: 16 bytes each for at least 8 in the file).
std::vector<std::string_view> GgufArrayStrings(const GgufValue& array);
// Element i of an array of integers or floats, as a double (read in place).
double GgufArrayNumber(const GgufValue& array, uint64_t i);

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is contiguous (a matrix [rows, cols] has dims {cols, rows})
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;        // into the data section, a multiple of the alignment
  int64_t num_elements = 0;
  int64_t num_bytes = 0;
};

class GgufFile {
 public:
  // Maps and validates the file. NOT_FOUND when missing, RESOURCE_EXHAUSTED when it cannot be mapped, otherwise
  // INVALID_ARGUMENT naming the rule.
  static absl::StatusOr<GgufFile> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // where the data section starts in the file

  // In file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* Find(const std::string& key) const;  // nullptr when absent
  // Typed lookups. NOT_FOUND when absent; INVALID_ARGUMENT naming the key when the value has another type or is
  // out of range. GetUint takes any integer type with a value in [0, max]; GetFloat any float or integer type.
  absl::StatusOr<uint64_t> GetUint(const std::string& key, uint64_t max) const;
  absl::StatusOr<double> GetFloat(const std::string& key) const;
  absl::StatusOr<std::string_view> GetString(const std::string& key) const;
  absl::StatusOr<bool> GetBool(const std::string& key) const;
  // An array whose elements have type `element`.
  absl::StatusOr<const GgufValue*> GetArray(const std::string& key, GgufValueType element) const;

  // In file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(const std::string& name) const;  // nullptr when absent
  const uint8_t* TensorData(const GgufTensorInfo& info) const { return file_.data() + data_offset_ + info.offset; }
  // Drops the tensor's pages from the process (MappedFile::ReleasePages).
  void ReleasePages(const GgufTensorInfo& info) const;

 private:
  GgufFile() = default;
  absl::Status Parse();

  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  absl::flat_hash_map<std::string, size_t> metadata_index_;  // key -> position in metadata_
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;  // name -> position in tensors_
};

}  // namespace llama
