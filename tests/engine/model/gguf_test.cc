// The GGUF reader: one test per structural rule of the format (each broken file is INVALID_ARGUMENT naming the
// rule), every metadata value type decoded (nested arrays included), and the alignment and offset arithmetic.
// Files are assembled byte by byte here, independently of our writer (convert/gguf_writer.h).
#include "engine/model/gguf.h"

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Little-endian byte assembly.
struct Bytes {
  std::string s;
  Bytes& U8(uint8_t v) { s.push_back(static_cast<char>(v)); return *this; }
  Bytes& U32(uint32_t v) { for (int i = 0; i < 4; ++i) U8(static_cast<uint8_t>(v >> (8 * i))); return *this; }
  Bytes& U64(uint64_t v) { for (int i = 0; i < 8; ++i) U8(static_cast<uint8_t>(v >> (8 * i))); return *this; }
  Bytes& F32(float f) { uint32_t b; std::memcpy(&b, &f, 4); return U32(b); }
  Bytes& Str(const std::string& v) { U64(v.size()); s += v; return *this; }
  Bytes& Raw(const std::string& v) { s += v; return *this; }
};

// One key/value pair: key, type id and the value's encoding.
struct Kv {
  std::string key;
  uint32_t type;
  std::string value;
};
Kv U32Kv(const std::string& key, uint32_t v) { return {key, 4, Bytes().U32(v).s}; }
Kv StrKv(const std::string& key, const std::string& v) { return {key, 8, Bytes().Str(v).s}; }

struct Tensor {
  std::string name;
  std::vector<uint64_t> dims;
  uint32_t type = 0;  // F32
  uint64_t offset = 0;
};

// header + kvs + tensor infos + zero padding to `alignment` + data_bytes bytes of data.
std::string Image(const std::vector<Kv>& kvs, const std::vector<Tensor>& tensors, size_t data_bytes,
                  uint32_t version = 3, size_t alignment = 32) {
  Bytes b;
  b.Raw("GGUF").U32(version).U64(tensors.size()).U64(kvs.size());
  for (const Kv& kv : kvs) b.Str(kv.key).U32(kv.type).Raw(kv.value);
  for (const Tensor& t : tensors) {
    b.Str(t.name).U32(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) b.U64(d);
    b.U32(t.type).U64(t.offset);
  }
  b.s.append((alignment - b.s.size() % alignment) % alignment, '\0');
  b.s.append(data_bytes, '\0');
  return b.s;
}

std::string Write(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "/gguf_test_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

absl::Status OpenStatus(const std::string& name, const std::string& bytes) {
  return GgufFile::Open(Write(name, bytes)).status();
}

void ExpectRule(const std::string& name, const std::string& bytes, const std::string& rule) {
  const absl::Status s = OpenStatus(name, bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), AllOf(HasSubstr("gguf: "), HasSubstr(rule)));
}

// A well-formed two-tensor file: an F32 vector [4] at 0 and a Q8_0 matrix dims {32, 2} at 32.
std::vector<Tensor> TwoTensors() { return {{"a", {4}, 0, 0}, {"b", {32, 2}, 8, 32}}; }

TEST(GgufTest, AcceptsWellFormedFileOfVersions2And3) {
  for (uint32_t version : {2u, 3u}) {
    auto file = GgufFile::Open(Write("ok", Image({StrKv("general.architecture", "llama")}, TwoTensors(), 32 + 68, version)));
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->version(), version);
    EXPECT_EQ(file->alignment(), 32u);
    ASSERT_EQ(file->tensors().size(), 2u);
    const GgufTensorInfo* b = file->FindTensor("b");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->dims, (std::vector<int64_t>{32, 2}));
    EXPECT_EQ(b->type, GgmlType::kQ8_0);
    EXPECT_EQ(b->num_elements, 64);
    EXPECT_EQ(b->num_bytes, 68);
    EXPECT_EQ(file->data_offset() % 32, 0u);
    EXPECT_EQ(file->TensorData(*b) - file->TensorData(*file->FindTensor("a")), 32);
    EXPECT_EQ(*file->GetString("general.architecture"), "llama");
  }
}

TEST(GgufTest, DecodesEveryValueTypeAndNestedArrays) {
  std::vector<Kv> kvs = {
      {"u8", 0, Bytes().U8(200).s},        {"i8", 1, Bytes().U8(0xff).s},
      {"u16", 2, Bytes().U8(0x34).U8(0x12).s}, {"i16", 3, Bytes().U8(0xfe).U8(0xff).s},
      U32Kv("u32", 4000000000u),           {"i32", 5, Bytes().U32(static_cast<uint32_t>(-5)).s},
      {"f32", 6, Bytes().F32(1.5f).s},     {"bool", 7, Bytes().U8(1).s},
      StrKv("str", "h\xC3\xA9llo"),        {"u64", 10, Bytes().U64(uint64_t{1} << 40).s},
      {"i64", 11, Bytes().U64(static_cast<uint64_t>(-7)).s},
      {"f64", 12, Bytes().U64(0x400921fb54442d18ull).s},  // pi
      {"strs", 9, Bytes().U32(8).U64(2).Str("x").Str("yz").s},
      {"floats", 9, Bytes().U32(6).U64(3).F32(0.5f).F32(-2.0f).F32(1e-3f).s},
      {"shorts", 9, Bytes().U32(3).U64(2).U8(0xfd).U8(0xff).U8(7).U8(0).s},
      {"nested", 9, Bytes().U32(9).U64(2).U32(5).U64(1).U32(7).U32(8).U64(1).Str("q").s},
  };
  auto file = GgufFile::Open(Write("types", Image(kvs, {}, 0)));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().size(), kvs.size());
  EXPECT_EQ(*file->GetUint("u8", 255), 200u);
  EXPECT_EQ(file->Find("i8")->int_value, -1);
  EXPECT_EQ(*file->GetUint("u16", 65535), 0x1234u);
  EXPECT_EQ(file->Find("i16")->int_value, -2);
  EXPECT_EQ(*file->GetUint("u32", UINT32_MAX), 4000000000u);
  EXPECT_EQ(file->Find("i32")->int_value, -5);
  EXPECT_EQ(*file->GetFloat("f32"), 1.5);
  EXPECT_TRUE(*file->GetBool("bool"));
  EXPECT_EQ(*file->GetString("str"), "h\xC3\xA9llo");
  EXPECT_EQ(*file->GetUint("u64", UINT64_MAX), uint64_t{1} << 40);
  EXPECT_EQ(file->Find("i64")->int_value, -7);
  EXPECT_DOUBLE_EQ(*file->GetFloat("f64"), 3.141592653589793);
  auto strs = GgufArrayElements(**file->GetArray("strs", GgufValueType::kString));
  ASSERT_EQ(strs.size(), 2u);
  EXPECT_EQ(strs[1].string_value, "yz");
  EXPECT_THAT(GgufArrayStrings(**file->GetArray("strs", GgufValueType::kString)), ::testing::ElementsAre("x", "yz"));
  const GgufValue* floats = *file->GetArray("floats", GgufValueType::kFloat32);
  EXPECT_EQ(GgufArrayNumber(*floats, 1), -2.0);
  EXPECT_EQ(GgufArrayNumber(*floats, 2), static_cast<double>(1e-3f));
  const GgufValue* shorts = *file->GetArray("shorts", GgufValueType::kInt16);
  EXPECT_EQ(GgufArrayNumber(*shorts, 0), -3.0);
  EXPECT_EQ(GgufArrayNumber(*shorts, 1), 7.0);
  auto nested = GgufArrayElements(**file->GetArray("nested", GgufValueType::kArray));
  ASSERT_EQ(nested.size(), 2u);
  EXPECT_EQ(GgufArrayElements(nested[0])[0].int_value, 7);
  EXPECT_EQ(GgufArrayElements(nested[1])[0].string_value, "q");
  // Typed lookups name the key when the type or range is wrong, and absent keys are NOT_FOUND.
  EXPECT_THAT(file->GetString("u32").status().message(), HasSubstr("'u32' has type uint32, expected string"));
  EXPECT_THAT(file->GetUint("i32", 100).status().message(), HasSubstr("'i32' = -5 is outside [0, 100]"));
  EXPECT_THAT(file->GetUint("u32", 100).status().message(), HasSubstr("outside [0, 100]"));
  EXPECT_THAT(file->GetArray("strs", GgufValueType::kInt32).status().message(),
              HasSubstr("array of string, expected array of int32"));
  EXPECT_EQ(file->GetUint("absent", 1).status().code(), absl::StatusCode::kNotFound);
}

TEST(GgufTest, TruncatedHeader) {
  ExpectRule("short", "GGUF\x03\0\0\0", "shorter than the 24-byte header");
  ExpectRule("empty", "", "file truncated: 0 bytes");
}

TEST(GgufTest, BadMagic) {
  std::string image = Image({}, {}, 0);
  image[0] = 'F';
  ExpectRule("magic", image, "bad magic");
}

TEST(GgufTest, UnsupportedVersions) {
  ExpectRule("v1", Image({}, {}, 0, 1), "unsupported version 1 (supported: 2, 3); version 1 used 32-bit counts");
  ExpectRule("v4", Image({}, {}, 0, 4), "unsupported version 4");
  ExpectRule("big_endian", Image({}, {}, 0, 0x03000000), "looks big-endian");
}

TEST(GgufTest, AbsurdCountsAreErrorsNotAllocations) {
  std::string image = Image({}, {}, 0);
  std::memset(&image[8], 0xff, 8);  // tensor_count = 2^64 - 1
  ExpectRule("tensor_count", image, "tensor_count 18446744073709551615 is more than");
  image = Image({}, {}, 0);
  std::memset(&image[16], 0x7f, 8);  // metadata_kv_count huge
  ExpectRule("kv_count", image, "metadata_kv_count");
}

TEST(GgufTest, StringLengthsPastTheEnd) {
  // A key whose length runs past the end of the file.
  std::string image = Bytes().Raw("GGUF").U32(3).U64(0).U64(1).U64(uint64_t{1} << 40).s + std::string(16, 'k');
  ExpectRule("key_past_end", image, "metadata key #0 length 1099511627776 exceeds the limit of 65535");
  image = Bytes().Raw("GGUF").U32(3).U64(0).U64(1).U64(1000).s + std::string(16, 'k');
  ExpectRule("key_truncated", image, "metadata key #0 length 1000 at byte 24 runs past the end of the file");
  // A string value whose length runs past the end (no allocation of 2^62 bytes is attempted).
  ExpectRule("value_past_end", Image({{"s", 8, Bytes().U64(uint64_t{1} << 62).s}}, {}, 0),
             "metadata key 's': string length 4611686018427387904");
}

TEST(GgufTest, ArrayLengthPastTheEnd) {
  ExpectRule("array_past_end", Image({{"a", 9, Bytes().U32(4).U64(uint64_t{1} << 40).s}}, {}, 0),
             "metadata key 'a': array length 1099511627776 of uint32 runs past the end of the file");
  ExpectRule("string_array_past_end", Image({{"a", 9, Bytes().U32(8).U64(3).Str("x").s}}, {}, 0),
             "metadata key 'a': array length 3 of string runs past the end");
}

TEST(GgufTest, UnknownValueTypes) {
  ExpectRule("type13", Image({{"k", 13, Bytes().U32(0).s}}, {}, 0), "metadata key 'k': unknown value type 13");
  ExpectRule("element13", Image({{"k", 9, Bytes().U32(13).U64(0).s}}, {}, 0),
             "metadata key 'k': unknown array element type 13");
}

TEST(GgufTest, BoolMustBeZeroOrOne) {
  ExpectRule("bool", Image({{"b", 7, Bytes().U8(2).s}}, {}, 0), "metadata key 'b': bool value 2 is neither 0 nor 1");
}

TEST(GgufTest, ArraysNestedTooDeep) {
  Bytes nested;
  for (int i = 0; i < 9; ++i) nested.U32(9).U64(1);
  nested.U32(4).U64(0);
  ExpectRule("deep", Image({{"n", 9, nested.s}}, {}, 0), "arrays nested deeper than 8");
}

TEST(GgufTest, DuplicateKey) {
  ExpectRule("dup_key", Image({U32Kv("k", 1), U32Kv("k", 2)}, {}, 0), "duplicate metadata key 'k'");
}

TEST(GgufTest, AlignmentMustBeAUint32PowerOfTwo) {
  ExpectRule("align3", Image({U32Kv("general.alignment", 24)}, {}, 0), "general.alignment must be a uint32 power of two, got uint32 24");
  ExpectRule("align_type", Image({StrKv("general.alignment", "32")}, {}, 0), "general.alignment must be a uint32 power of two, got string");
  // A valid non-default alignment moves the data section and the offsets to multiples of it.
  auto file = GgufFile::Open(Write("align64", Image({U32Kv("general.alignment", 64)},
                                                   {{"a", {4}, 0, 0}, {"b", {4}, 0, 64}}, 64 + 16, 3, 64)));
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->data_offset() % 64, 0u);
  ExpectRule("misaligned64", Image({U32Kv("general.alignment", 64)}, {{"a", {4}, 0, 32}}, 64, 3, 64),
             "tensor 'a': offset 32 is not a multiple of the alignment 64");
}

TEST(GgufTest, TensorNameRules) {
  ExpectRule("long_name", Image({}, {{std::string(65, 'n'), {4}, 0, 0}}, 16), "tensor #0 name length 65 exceeds the limit of 64");
  ExpectRule("dup_tensor", Image({}, {{"a", {4}, 0, 0}, {"a", {4}, 0, 32}}, 48), "duplicate tensor name 'a'");
}

TEST(GgufTest, DimensionRules) {
  ExpectRule("ndims0", Image({}, {{"a", {}, 0, 0}}, 16), "tensor 'a': n_dimensions 0 (must be 1 to 4)");
  ExpectRule("ndims5", Image({}, {{"a", {1, 1, 1, 1, 1}, 0, 0}}, 16), "tensor 'a': n_dimensions 5");
  ExpectRule("zero_dim", Image({}, {{"a", {4, 0}, 0, 0}}, 16), "tensor 'a': dimension 1 = 0 (dimensions must be > 0)");
  ExpectRule("overflow", Image({}, {{"a", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0}}, 16),
             "makes the element count overflow");
}

TEST(GgufTest, UnknownTensorTypes) {
  ExpectRule("type99", Image({}, {{"a", {4}, 99, 0}}, 16), "tensor 'a': unknown tensor type 99");
  ExpectRule("type4", Image({}, {{"a", {32}, 4, 0}}, 32), "tensor 'a': unknown tensor type 4");  // Q4_2, removed
}

TEST(GgufTest, ElementsMustFillWholeBlocks) {
  ExpectRule("block", Image({}, {{"q", {33, 2}, 8, 0}}, 96), "tensor 'q': dims[0] = 33 is not a multiple of Q8_0's block size 32");
}

TEST(GgufTest, TensorPlacementRules) {
  ExpectRule("misaligned", Image({}, {{"a", {4}, 0, 8}}, 64), "tensor 'a': offset 8 is not a multiple of the alignment 32");
  ExpectRule("overlap", Image({}, {{"a", {16}, 0, 0}, {"b", {4}, 0, 32}, {"c", {16}, 0, 32}}, 128),
             "overlaps tensor");
  // The second tensor's 68 bytes would end 4 bytes past the file (a truncated file).
  ExpectRule("past_end", Image({}, TwoTensors(), 32 + 64), "tensor 'b': data [32, 100) runs past the end of the data section (96 bytes");
  // The file ends right after the tensor infos (24-byte header, 33 + 41 bytes of infos): no data section at all.
  ExpectRule("no_data", Image({}, TwoTensors(), 0).substr(0, 24 + 33 + 41),
             "tensor 'a': data [0, 16) runs past the end of the data section (0 bytes");
}

TEST(GgufTest, TruncatedInsideTheTensorInfos) {
  // Cut inside tensor 'b''s dimensions (infos: 'a' takes 33 bytes after the 24-byte header, 'b' 41).
  const std::string image = Image({}, TwoTensors(), 100);
  ExpectRule("infos", image.substr(0, 24 + 33 + 20), "tensor 'b' dimension 0 at byte 70 needs 8 bytes, only 7 left (file truncated?)");
}

TEST(GgufTest, MissingFileIsNotFound) {
  EXPECT_EQ(GgufFile::Open(::testing::TempDir() + "/gguf_test_nope").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace llama
