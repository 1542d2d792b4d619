#include "engine/model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

using Json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we (a corrupt length must not become a huge
// allocation).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

int64_t DtypeBytes(SafetensorsDtype dtype) { return dtype == SafetensorsDtype::kF32 ? 4 : 2; }

absl::Status FileError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": safetensors: ", what));
}

absl::Status TensorError(const std::string& path, const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": safetensors: tensor '", name, "': ", what));
}

// Parses the JSON header, rejecting duplicate top-level names (nlohmann would silently keep the last one).
absl::StatusOr<Json> ParseHeaderJson(std::string_view text, const std::string& path) {
  std::set<std::string> seen;
  std::string duplicate;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth == 1 && event == Json::parse_event_t::key && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  if (text.empty() || text.front() != '{') return FileError(path, "header is not a JSON object (must start with '{')");
  Json j = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  if (j.is_discarded()) return FileError(path, "header is not valid JSON");
  if (!j.is_object()) return FileError(path, "header is not a JSON object");
  if (!duplicate.empty()) return TensorError(path, duplicate, "duplicate tensor name in header");
  return j;
}

absl::StatusOr<SafetensorsDtype> ParseDtype(const Json& entry, const std::string& path, const std::string& name) {
  auto it = entry.find("dtype");
  if (it == entry.end() || !it->is_string()) return TensorError(path, name, "missing string field 'dtype'");
  const std::string dtype = it->get<std::string>();
  if (dtype == "F32") return SafetensorsDtype::kF32;
  if (dtype == "F16") return SafetensorsDtype::kF16;
  if (dtype == "BF16") return SafetensorsDtype::kBF16;
  return TensorError(path, name, absl::StrCat("unsupported dtype ", dtype, " (supported: F32, F16, BF16)"));
}

absl::Status ParseShape(const Json& entry, const std::string& path, SafetensorsTensorInfo* info) {
  auto it = entry.find("shape");
  if (it == entry.end() || !it->is_array()) return TensorError(path, info->name, "missing list field 'shape'");
  for (const Json& d : *it) {
    if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)) {
      return TensorError(path, info->name,
                         absl::StrCat("shape must be a list of non-negative integers, got ", it->dump()));
    }
    const uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) return TensorError(path, info->name, "shape dimension too large");
    info->shape.push_back(static_cast<int64_t>(v));
  }
  return absl::OkStatus();
}

absl::Status ParseOffsets(const Json& entry, const std::string& path, SafetensorsTensorInfo* info) {
  auto it = entry.find("data_offsets");
  const bool ok = it != entry.end() && it->is_array() && it->size() == 2 && (*it)[0].is_number_unsigned() &&
                  (*it)[1].is_number_unsigned() && (*it)[0].get<uint64_t>() <= (*it)[1].get<uint64_t>() &&
                  (*it)[1].get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
  if (!ok) {
    return TensorError(path, info->name,
                       absl::StrCat("data_offsets must be [begin, end] with 0 <= begin <= end, got ",
                                    it == entry.end() ? std::string("nothing") : it->dump()));
  }
  info->begin = static_cast<int64_t>((*it)[0].get<uint64_t>());
  info->end = static_cast<int64_t>((*it)[1].get<uint64_t>());
  return absl::OkStatus();
}

// One header entry: dtype, shape, offsets, and byte size == elements x dtype size, inside the data buffer.
absl::StatusOr<SafetensorsTensorInfo> ParseEntry(const std::string& name, const Json& entry,
                                                 const std::string& path, int64_t data_bytes) {
  SafetensorsTensorInfo info;
  info.name = name;
  if (!entry.is_object()) return TensorError(path, name, "header entry must be an object");
  ASSIGN_OR_RETURN(info.dtype, ParseDtype(entry, path, name));
  RETURN_IF_ERROR(ParseShape(entry, path, &info));
  RETURN_IF_ERROR(ParseOffsets(entry, path, &info));
  int64_t expected = DtypeBytes(info.dtype);
  for (int64_t d : info.shape) {
    if (d != 0 && expected > INT64_MAX / d) return TensorError(path, name, "shape too large (byte size overflows)");
    expected *= d;
  }
  const std::string shape_text = absl::StrCat("[", absl::StrJoin(info.shape, ", "), "]");
  if (info.end - info.begin != expected) {
    return TensorError(path, name,
                       absl::StrCat("byte size ", info.end - info.begin, " (data_offsets [", info.begin, ", ",
                                    info.end, ")) does not match shape ", shape_text, " x ",
                                    SafetensorsDtypeName(info.dtype), " = ", expected, " bytes"));
  }
  if (info.end > data_bytes) {
    return TensorError(path, name,
                       absl::StrCat("data_offsets [", info.begin, ", ", info.end,
                                    ") extend past the end of the data buffer (", data_bytes,
                                    " bytes; file truncated?)"));
  }
  return info;
}

// Sorted by offset, the tensors must tile [0, data_bytes) exactly: each starts where the previous ended.
absl::Status CheckCoverage(const std::vector<SafetensorsTensorInfo>& tensors, const std::string& path,
                           int64_t data_bytes) {
  int64_t cursor = 0;
  const SafetensorsTensorInfo* prev = nullptr;
  for (const auto& t : tensors) {
    if (t.begin < cursor) {
      return TensorError(path, t.name,
                         absl::StrCat("data_offsets [", t.begin, ", ", t.end, ") overlap tensor '", prev->name,
                                      "' [", prev->begin, ", ", prev->end, ")"));
    }
    if (t.begin > cursor) {
      return TensorError(path, t.name,
                         absl::StrCat("gap of ", t.begin - cursor, " bytes in the data buffer before offset ",
                                      t.begin, " (tensors must be contiguous)"));
    }
    cursor = t.end;
    prev = &t;
  }
  if (cursor != data_bytes) {
    return FileError(path, absl::StrCat("gap of ", data_bytes - cursor,
                                        " unused bytes at the end of the data buffer (tensors must cover it)"));
  }
  return absl::OkStatus();
}

absl::Status ParseMetadata(const Json& value, const std::string& path, std::map<std::string, std::string>* out) {
  if (!value.is_object()) return FileError(path, "__metadata__ must be an object of strings");
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it->is_string()) return FileError(path, absl::StrCat("__metadata__ value for '", it.key(), "' must be a string"));
    if (out != nullptr) (*out)[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

}  // namespace

int64_t SafetensorsTensorInfo::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const char* SafetensorsDtypeName(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32: return "F32";
    case SafetensorsDtype::kF16: return "F16";
    case SafetensorsDtype::kBF16: return "BF16";
  }
  return "?";
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    out = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else if (mantissa == 0) {
    out = sign;  // +-0
  } else {
    // Subnormal half: normalise the mantissa into an fp32 normal.
    int e = -1;
    do {
      ++e;
      mantissa <<= 1;
    } while ((mantissa & 0x400) == 0);
    out = sign | static_cast<uint32_t>(112 - e) << 23 | ((mantissa & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

float BFloat16ToFloat(uint16_t bits) {
  const uint32_t out = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &out, sizeof(f));
  return f;
}

absl::StatusOr<std::vector<SafetensorsTensorInfo>> ParseSafetensorsHeader(
    absl::Span<const uint8_t> file, const std::string& path, size_t* data_offset,
    std::map<std::string, std::string>* metadata) {
  if (file.size() < 8) {
    return FileError(path, absl::StrCat("file truncated: ", file.size(), " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | file[i];  // little-endian
  if (header_bytes > file.size() - 8) {
    return FileError(path, absl::StrCat("header length ", header_bytes, " runs past the end of the file (",
                                        file.size(), " bytes)"));
  }
  if (header_bytes > kMaxHeaderBytes) {
    return FileError(path, absl::StrCat("header length ", header_bytes, " exceeds the limit of ", kMaxHeaderBytes));
  }
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), header_bytes);
  ASSIGN_OR_RETURN(Json header, ParseHeaderJson(text, path));
  *data_offset = 8 + header_bytes;
  const int64_t data_bytes = static_cast<int64_t>(file.size() - *data_offset);
  std::vector<SafetensorsTensorInfo> tensors;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      RETURN_IF_ERROR(ParseMetadata(it.value(), path, metadata));
      continue;
    }
    ASSIGN_OR_RETURN(SafetensorsTensorInfo info, ParseEntry(it.key(), it.value(), path, data_bytes));
    tensors.push_back(std::move(info));
  }
  // Ties (zero-byte tensors at one offset) keep name order so the result is deterministic.
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  RETURN_IF_ERROR(CheckCoverage(tensors, path, data_bytes));
  return tensors;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile file;
  ASSIGN_OR_RETURN(file.file_, MappedFile::Open(path));
  ASSIGN_OR_RETURN(file.tensors_, ParseSafetensorsHeader(file.file_.bytes(), path, &file.data_offset_, &file.metadata_));
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_[file.tensors_[i].name] = i;
  return file;
}

const SafetensorsTensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::ReadElementsF32(const SafetensorsTensorInfo& info, int64_t begin, int64_t end, float* out) const {
  CHECK(0 <= begin && begin <= end && end <= info.num_elements());
  const int64_t n = end - begin;
  const int64_t bytes = DtypeBytes(info.dtype);
  // Not necessarily aligned: F32 is copied with memcpy, F16/BF16 assembled byte by byte (little-endian).
  const uint8_t* src = file_.data() + data_offset_ + info.begin + begin * bytes;
  if (info.dtype == SafetensorsDtype::kF32) {
    if (n > 0) std::memcpy(out, src, static_cast<size_t>(n) * 4);
    return;
  }
  const bool half = info.dtype == SafetensorsDtype::kF16;
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t bits = static_cast<uint16_t>(src[2 * i] | (src[2 * i + 1] << 8));
    out[i] = half ? HalfToFloat(bits) : BFloat16ToFloat(bits);
  }
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadF32(const std::string& name) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat(path(), ": no tensor named '", name, "'"));
  std::vector<float> out(static_cast<size_t>(info->num_elements()));
  ReadElementsF32(*info, 0, info->num_elements(), out.data());
  return out;
}

void SafetensorsFile::ReleasePages(const SafetensorsTensorInfo& info) const {
  file_.ReleasePages(data_offset_ + info.begin, data_offset_ + info.end);
}

absl::Status WriteSafetensors(const std::string& path, absl::Span<const SafetensorsWriteTensor> tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const auto& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (n != static_cast<int64_t>(t.data.size())) {
      return absl::InvalidArgumentError(absl::StrCat("WriteSafetensors: tensor '", t.name, "' has ", t.data.size(),
                                                     " values for shape [", absl::StrJoin(t.shape, ", "), "]"));
    }
    if (t.name == "__metadata__" || header.contains(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat("WriteSafetensors: duplicate or reserved name '", t.name, "'"));
    }
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + 4 * n}}};
    offset += 4 * n;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InvalidArgumentError(absl::StrCat("cannot create ", tmp));
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    // fp32 is written in host byte order; the project only targets little-endian hosts.
    for (const auto& t : tensors) {
      out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * 4));
    }
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("write failed: ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp, " -> ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace llama
