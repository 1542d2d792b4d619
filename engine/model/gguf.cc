#include "engine/model/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace llama {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxTensorNameBytes = 64;  // ggml's GGML_MAX_NAME
constexpr uint32_t kMaxDims = 4;              // ggml's GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key, value type, a 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims, type, offset

absl::Status Error(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": gguf: ", what));
}

// Bytes of a fixed-size value type; 0 for strings and arrays; -1 for an id the format does not define.
int FixedBytes(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return -1;
}

// The smallest encoding of one value of a (known) type: what a count of them must leave room for.
uint64_t MinBytes(GgufValueType type) {
  if (type == GgufValueType::kString) return 8;
  if (type == GgufValueType::kArray) return 4 + 8;
  return static_cast<uint64_t>(FixedBytes(static_cast<uint32_t>(type)));
}

uint64_t LoadLe(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A bounds-checked little-endian cursor over the file. Every read names what it reads, so a truncated file says
// where it ended.
class Cursor {
 public:
  Cursor(absl::Span<const uint8_t> bytes, size_t pos, const std::string& path)
      : bytes_(bytes), pos_(pos), path_(path) {}
  size_t pos() const { return pos_; }
  const uint8_t* at(size_t pos) const { return bytes_.data() + pos; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const std::string& path() const { return path_; }

  absl::Status Take(uint64_t n, const std::string& what, const uint8_t** out) {
    if (n > remaining()) {
      return Error(path_, absl::StrCat(what, " at byte ", pos_, " needs ", n, " bytes, only ", remaining(),
                                       " left (file truncated?)"));
    }
    *out = bytes_.data() + pos_;
    pos_ += n;
    return absl::OkStatus();
  }
  absl::Status U32(const std::string& what, uint32_t* out) {
    const uint8_t* p = nullptr;
    RETURN_IF_ERROR(Take(4, what, &p));
    *out = static_cast<uint32_t>(LoadLe(p, 4));
    return absl::OkStatus();
  }
  absl::Status U64(const std::string& what, uint64_t* out) {
    const uint8_t* p = nullptr;
    RETURN_IF_ERROR(Take(8, what, &p));
    *out = LoadLe(p, 8);
    return absl::OkStatus();
  }
  // A u64 length then that many bytes; lengths above max_bytes are refused before anything is read.
  absl::Status String(const std::string& what, uint64_t max_bytes, std::string_view* out) {
    uint64_t n = 0;
    RETURN_IF_ERROR(U64(absl::StrCat(what, " length"), &n));
    if (n > max_bytes) return Error(path_, absl::StrCat(what, " length ", n, " exceeds the limit of ", max_bytes));
    if (n > remaining()) {
      return Error(path_, absl::StrCat(what, " length ", n, " at byte ", pos_ - 8, " runs past the end of the file (",
                                       remaining(), " bytes left)"));
    }
    const uint8_t* p = nullptr;
    RETURN_IF_ERROR(Take(n, what, &p));
    *out = std::string_view(reinterpret_cast<const char*>(p), n);
    return absl::OkStatus();
  }

 private:
  absl::Span<const uint8_t> bytes_;
  size_t pos_;
  const std::string& path_;
};

absl::Status ReadValue(Cursor* c, uint32_t type_id, int depth, const std::string& key, GgufValue* out);

// An array value: element type, count (bounded by the bytes left), then every element validated.
absl::Status ReadArray(Cursor* c, int depth, const std::string& key, GgufValue* out) {
  if (depth >= kMaxArrayDepth) {
    return Error(c->path(), absl::StrCat("metadata key '", key, "': arrays nested deeper than ", kMaxArrayDepth));
  }
  uint32_t element = 0;
  RETURN_IF_ERROR(c->U32(absl::StrCat("metadata key '", key, "': array element type"), &element));
  if (FixedBytes(element) < 0) {
    return Error(c->path(), absl::StrCat("metadata key '", key, "': unknown array element type ", element));
  }
  uint64_t count = 0;
  RETURN_IF_ERROR(c->U64(absl::StrCat("metadata key '", key, "': array length"), &count));
  const GgufValueType element_type = static_cast<GgufValueType>(element);
  if (count > c->remaining() / MinBytes(element_type)) {
    return Error(c->path(), absl::StrCat("metadata key '", key, "': array length ", count, " of ",
                                         GgufValueTypeName(element_type), " runs past the end of the file (",
                                         c->remaining(), " bytes left)"));
  }
  const size_t begin = c->pos();
  for (uint64_t i = 0; i < count; ++i) {
    GgufValue ignored;
    RETURN_IF_ERROR(ReadValue(c, element, depth + 1, key, &ignored));
  }
  out->element_type = element_type;
  out->array_size = count;
  out->array_bytes = absl::MakeConstSpan(c->at(begin), c->pos() - begin);
  return absl::OkStatus();
}

absl::Status ReadValue(Cursor* c, uint32_t type_id, int depth, const std::string& key, GgufValue* out) {
  const int fixed = FixedBytes(type_id);
  if (fixed < 0) return Error(c->path(), absl::StrCat("metadata key '", key, "': unknown value type ", type_id));
  out->type = static_cast<GgufValueType>(type_id);
  if (out->type == GgufValueType::kString) {
    return c->String(absl::StrCat("metadata key '", key, "': string"), std::numeric_limits<uint64_t>::max(),
                     &out->string_value);
  }
  if (out->type == GgufValueType::kArray) return ReadArray(c, depth, key, out);
  const uint8_t* p = nullptr;
  RETURN_IF_ERROR(c->Take(fixed, absl::StrCat("metadata key '", key, "': ", GgufValueTypeName(out->type), " value"), &p));
  const uint64_t bits = LoadLe(p, fixed);
  switch (out->type) {
    case GgufValueType::kBool:
      if (bits > 1) {
        return Error(c->path(), absl::StrCat("metadata key '", key, "': bool value ", bits, " is neither 0 nor 1"));
      }
      out->uint_value = bits;
      break;
    case GgufValueType::kUint8:
    case GgufValueType::kUint16:
    case GgufValueType::kUint32:
    case GgufValueType::kUint64:
      out->uint_value = bits;
      break;
    case GgufValueType::kInt8: out->int_value = static_cast<int8_t>(bits); break;
    case GgufValueType::kInt16: out->int_value = static_cast<int16_t>(bits); break;
    case GgufValueType::kInt32: out->int_value = static_cast<int32_t>(bits); break;
    case GgufValueType::kInt64: out->int_value = static_cast<int64_t>(bits); break;
    case GgufValueType::kFloat32: {
      const uint32_t b32 = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &b32, 4);
      out->float_value = f;
      break;
    }
    case GgufValueType::kFloat64: {
      double d;
      std::memcpy(&d, &bits, 8);
      out->float_value = d;
      break;
    }
    default:
      break;
  }
  return absl::OkStatus();
}

// The header: magic, version, the two counts (each bounded by what the rest of the file could hold).
absl::Status ReadHeader(Cursor* c, uint32_t* version, uint64_t* tensor_count, uint64_t* kv_count) {
  if (c->remaining() < 24) {
    return Error(c->path(), absl::StrCat("file truncated: ", c->remaining(),
                                         " bytes, shorter than the 24-byte header (magic, version, two counts)"));
  }
  uint32_t magic = 0;
  RETURN_IF_ERROR(c->U32("magic", &magic));
  if (magic != kMagic) return Error(c->path(), absl::StrFormat("bad magic 0x%08x (a GGUF file starts with 'GGUF')", magic));
  RETURN_IF_ERROR(c->U32("version", version));
  if (*version != 2 && *version != 3) {
    const bool swapped = *version == 0x02000000 || *version == 0x03000000;
    return Error(c->path(), absl::StrCat("unsupported version ", *version, " (supported: 2, 3)",
                                         swapped ? "; the file looks big-endian" : "",
                                         *version == 1 ? "; version 1 used 32-bit counts" : ""));
  }
  RETURN_IF_ERROR(c->U64("tensor_count", tensor_count));
  RETURN_IF_ERROR(c->U64("metadata_kv_count", kv_count));
  if (*kv_count > c->remaining() / kMinKvBytes) {
    return Error(c->path(), absl::StrCat("metadata_kv_count ", *kv_count, " is more than the ", c->remaining(),
                                         " bytes left could hold (", kMinKvBytes, " bytes each at least)"));
  }
  if (*tensor_count > c->remaining() / kMinTensorInfoBytes) {
    return Error(c->path(), absl::StrCat("tensor_count ", *tensor_count, " is more than the ", c->remaining(),
                                         " bytes left could hold (", kMinTensorInfoBytes, " bytes each at least)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GgufTensorInfo> ReadTensorInfo(Cursor* c, uint64_t index) {
  GgufTensorInfo t;
  std::string_view name;
  RETURN_IF_ERROR(c->String(absl::StrCat("tensor #", index, " name"), kMaxTensorNameBytes, &name));
  t.name = std::string(name);
  const std::string what = absl::StrCat("tensor '", t.name, "'");
  uint32_t n_dims = 0;
  RETURN_IF_ERROR(c->U32(what + " n_dimensions", &n_dims));
  if (n_dims < 1 || n_dims > kMaxDims) {
    return Error(c->path(), absl::StrCat(what, ": n_dimensions ", n_dims, " (must be 1 to ", kMaxDims, ")"));
  }
  int64_t elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t dim = 0;
    RETURN_IF_ERROR(c->U64(absl::StrCat(what, " dimension ", d), &dim));
    if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / elements)) {
      return Error(c->path(), absl::StrCat(what, ": dimension ", d, " = ", dim,
                                           dim == 0 ? " (dimensions must be > 0)" : " makes the element count overflow"));
    }
    elements *= static_cast<int64_t>(dim);
    t.dims.push_back(static_cast<int64_t>(dim));
  }
  uint32_t type_id = 0;
  RETURN_IF_ERROR(c->U32(what + " type", &type_id));
  const GgmlTypeTraits* traits = FindGgmlType(type_id);
  if (traits == nullptr) return Error(c->path(), absl::StrCat(what, ": unknown tensor type ", type_id));
  t.type = traits->type;
  if (t.dims[0] % traits->block_size != 0) {
    return Error(c->path(), absl::StrCat(what, ": dims[0] = ", t.dims[0], " is not a multiple of ", traits->name,
                                         "'s block size ", traits->block_size));
  }
  t.num_elements = elements;
  if (elements / traits->block_size > std::numeric_limits<int64_t>::max() / traits->block_bytes) {
    return Error(c->path(), absl::StrCat(what, ": byte size overflows"));
  }
  t.num_bytes = elements / traits->block_size * traits->block_bytes;
  RETURN_IF_ERROR(c->U64(what + " offset", &t.offset));
  return t;
}

// Offsets aligned, bytes inside the data section, no two tensors overlapping.
absl::Status CheckPlacement(const std::vector<GgufTensorInfo>& tensors, uint64_t alignment, uint64_t data_bytes,
                            const std::string& path) {
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : tensors) {
    if (t.offset % alignment != 0) {
      return Error(path, absl::StrCat("tensor '", t.name, "': offset ", t.offset, " is not a multiple of the alignment ",
                                      alignment));
    }
    if (t.offset > data_bytes || static_cast<uint64_t>(t.num_bytes) > data_bytes - t.offset) {
      return Error(path, absl::StrCat("tensor '", t.name, "': data [", t.offset, ", ", t.offset + t.num_bytes,
                                      ") runs past the end of the data section (", data_bytes,
                                      " bytes; file truncated?)"));
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensorInfo& prev = *by_offset[i - 1];
    const GgufTensorInfo& t = *by_offset[i];
    if (t.offset < prev.offset + prev.num_bytes) {
      return Error(path, absl::StrCat("tensor '", t.name, "' data [", t.offset, ", ", t.offset + t.num_bytes,
                                      ") overlaps tensor '", prev.name, "' [", prev.offset, ", ",
                                      prev.offset + prev.num_bytes, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* GgufValueTypeName(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "?";
}

bool GgufValue::is_signed() const {
  return type == GgufValueType::kInt8 || type == GgufValueType::kInt16 || type == GgufValueType::kInt32 ||
         type == GgufValueType::kInt64;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
      return true;
    default:
      return false;
  }
}

std::vector<GgufValue> GgufArrayElements(const GgufValue& array) {
  CHECK(array.type == GgufValueType::kArray);
  const std::string path = "(validated array)";
  Cursor c(array.array_bytes, 0, path);
  std::vector<GgufValue> out(array.array_size);
  for (GgufValue& v : out) CHECK_OK(ReadValue(&c, static_cast<uint32_t>(array.element_type), 1, "", &v));
  return out;
}

std::vector<std::string_view> GgufArrayStrings(const GgufValue& array) {
  CHECK(array.type == GgufValueType::kArray && array.element_type == GgufValueType::kString);
  std::vector<std::string_view> out;
  out.reserve(array.array_size);
  size_t pos = 0;
  for (uint64_t i = 0; i < array.array_size; ++i) {
    const uint64_t n = LoadLe(array.array_bytes.data() + pos, 8);  // validated at Open: inside the array
    out.emplace_back(reinterpret_cast<const char*>(array.array_bytes.data() + pos + 8), n);
    pos += 8 + n;
  }
  return out;
}

double GgufArrayNumber(const GgufValue& array, uint64_t i) {
  CHECK(array.type == GgufValueType::kArray && i < array.array_size);
  const int bytes = FixedBytes(static_cast<uint32_t>(array.element_type));
  CHECK(bytes > 0 && array.element_type != GgufValueType::kBool);
  const uint64_t bits = LoadLe(array.array_bytes.data() + i * bytes, bytes);
  switch (array.element_type) {
    case GgufValueType::kInt8: return static_cast<int8_t>(bits);
    case GgufValueType::kInt16: return static_cast<int16_t>(bits);
    case GgufValueType::kInt32: return static_cast<int32_t>(bits);
    case GgufValueType::kInt64: return static_cast<double>(static_cast<int64_t>(bits));
    case GgufValueType::kFloat32: {
      const uint32_t b32 = static_cast<uint32_t>(bits);
      float f;
      std::memcpy(&f, &b32, 4);
      return f;
    }
    case GgufValueType::kFloat64: {
      double d;
      std::memcpy(&d, &bits, 8);
      return d;
    }
    default: return static_cast<double>(bits);
  }
}

absl::StatusOr<GgufFile> GgufFile::Open(const std::string& path) {
  GgufFile file;
  ASSIGN_OR_RETURN(file.file_, MappedFile::Open(path));
  RETURN_IF_ERROR(file.Parse());
  return file;
}

absl::Status GgufFile::Parse() {
  Cursor c(file_.bytes(), 0, file_.path());
  uint64_t tensor_count = 0, kv_count = 0;
  RETURN_IF_ERROR(ReadHeader(&c, &version_, &tensor_count, &kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string_view key_bytes;
    RETURN_IF_ERROR(c.String(absl::StrCat("metadata key #", i), kMaxKeyBytes, &key_bytes));
    const std::string key(key_bytes);
    uint32_t type = 0;
    RETURN_IF_ERROR(c.U32(absl::StrCat("metadata key '", key, "' value type"), &type));
    GgufValue value;
    RETURN_IF_ERROR(ReadValue(&c, type, 0, key, &value));
    if (!metadata_index_.emplace(key, metadata_.size()).second) {
      return Error(path(), absl::StrCat("duplicate metadata key '", key, "'"));
    }
    metadata_.emplace_back(key, value);
  }
  if (const GgufValue* a = Find("general.alignment")) {
    if (a->type != GgufValueType::kUint32 || a->uint_value == 0 || (a->uint_value & (a->uint_value - 1)) != 0) {
      return Error(path(), absl::StrCat("general.alignment must be a uint32 power of two, got ",
                                        GgufValueTypeName(a->type),
                                        a->type == GgufValueType::kUint32 ? absl::StrCat(" ", a->uint_value) : ""));
    }
    alignment_ = a->uint_value;
  }
  for (uint64_t i = 0; i < tensor_count; ++i) {
    ASSIGN_OR_RETURN(GgufTensorInfo t, ReadTensorInfo(&c, i));
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      return Error(path(), absl::StrCat("duplicate tensor name '", t.name, "'"));
    }
    tensors_.push_back(std::move(t));
  }
  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t data_bytes = data_offset_ <= file_.size() ? file_.size() - data_offset_ : 0;
  return CheckPlacement(tensors_, alignment_, data_bytes, path());
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

absl::StatusOr<uint64_t> GgufFile::GetUint(const std::string& key, uint64_t max) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat("no metadata key '", key, "'"));
  if (!v->is_integer()) {
    return Error(path(), absl::StrCat("metadata key '", key, "' has type ", GgufValueTypeName(v->type),
                                      ", expected an integer"));
  }
  const bool is_signed = v->is_signed();
  if ((is_signed && (v->int_value < 0 || static_cast<uint64_t>(v->int_value) > max)) ||
      (!is_signed && v->uint_value > max)) {
    return Error(path(), absl::StrCat("metadata key '", key, "' = ",
                                      is_signed ? absl::StrCat(v->int_value) : absl::StrCat(v->uint_value),
                                      " is outside [0, ", max, "]"));
  }
  return is_signed ? static_cast<uint64_t>(v->int_value) : v->uint_value;
}

absl::StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat("no metadata key '", key, "'"));
  if (v->type == GgufValueType::kFloat32 || v->type == GgufValueType::kFloat64) return v->float_value;
  if (v->is_integer()) return v->is_signed() ? static_cast<double>(v->int_value) : static_cast<double>(v->uint_value);
  return Error(path(), absl::StrCat("metadata key '", key, "' has type ", GgufValueTypeName(v->type),
                                    ", expected a number"));
}

absl::StatusOr<std::string_view> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat("no metadata key '", key, "'"));
  if (v->type != GgufValueType::kString) {
    return Error(path(), absl::StrCat("metadata key '", key, "' has type ", GgufValueTypeName(v->type),
                                      ", expected string"));
  }
  return v->string_value;
}

absl::StatusOr<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat("no metadata key '", key, "'"));
  if (v->type != GgufValueType::kBool) {
    return Error(path(), absl::StrCat("metadata key '", key, "' has type ", GgufValueTypeName(v->type),
                                      ", expected bool"));
  }
  return v->uint_value != 0;
}

absl::StatusOr<const GgufValue*> GgufFile::GetArray(const std::string& key, GgufValueType element) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return absl::NotFoundError(absl::StrCat("no metadata key '", key, "'"));
  if (v->type != GgufValueType::kArray || v->element_type != element) {
    return Error(path(), absl::StrCat("metadata key '", key, "' has type ", GgufValueTypeName(v->type),
                                      v->type == GgufValueType::kArray
                                          ? absl::StrCat(" of ", GgufValueTypeName(v->element_type))
                                          : std::string(),
                                      ", expected array of ", GgufValueTypeName(element)));
  }
  return v;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::ReleasePages(const GgufTensorInfo& info) const {
  file_.ReleasePages(data_offset_ + info.offset, data_offset_ + info.offset + info.num_bytes);
}

}  // namespace llama
