// The safetensors reader: one test per rule of the format (each broken file is an error naming the rule and the
// tensor), exact F16/BF16 widening on hand-chosen bit patterns, and a write/read round trip.
#include "engine/model/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/safetensors_test_" + name; }

// Writes the 8-byte little-endian header_length (defaults to header.size()), the header text, then data_bytes
// bytes of data.
std::string WriteRaw(const std::string& name, const std::string& header, size_t data_bytes,
                     uint64_t header_length = UINT64_MAX) {
  if (header_length == UINT64_MAX) header_length = header.size();
  const std::string path = TempPath(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((header_length >> (8 * i)) & 0xff));
  out << header;
  out << std::string(data_bytes, '\0');
  return path;
}

absl::Status OpenStatus(const std::string& path) { return SafetensorsFile::Open(path).status(); }

TEST(SafetensorsTest, AcceptsWellFormedFile) {
  const std::string path = WriteRaw(
      "ok", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2,1],"data_offsets":[8,12]}})",
      12);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->Find("b")->shape, (std::vector<int64_t>{2, 1}));
}

TEST(SafetensorsTest, TruncatedFileShorterThanHeaderLength) {
  const std::string path = TempPath("short");
  std::ofstream(path, std::ios::binary) << "abcd";
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("truncated"));
  EXPECT_EQ(OpenStatus(path).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsTest, TruncatedDataBufferNamesTensor) {
  // The header promises 8 bytes of data for 'w'; the file stops after 5.
  const std::string path = WriteRaw("trunc_data", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 5);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'w'"), HasSubstr("past the end of the data buffer")));
}

TEST(SafetensorsTest, HeaderLengthPastEndOfFile) {
  const std::string path = WriteRaw("hdr_past", R"({})", 0, /*header_length=*/1000);
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("header length 1000 runs past the end of the file"));
}

TEST(SafetensorsTest, HugeHeaderLengthIsAnErrorNotAnAllocation) {
  const std::string path = WriteRaw("hdr_huge", R"({})", 0, /*header_length=*/uint64_t{1} << 60);
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("runs past the end of the file"));
}

TEST(SafetensorsTest, HeaderLengthAboveLimitInsideALargeSparseFile) {
  const std::string path = WriteRaw("hdr_limit", "{", 0, /*header_length=*/150'000'000);
  ASSERT_EQ(::truncate(path.c_str(), 200'000'000), 0);  // sparse: no real disk used
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("exceeds the limit"));
  ::unlink(path.c_str());
}

TEST(SafetensorsTest, HeaderNotJson) {
  const std::string path = WriteRaw("not_json", R"({"w": {"dtype": "F32",)", 0);
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsTest, HeaderNotAnObject) {
  const std::string path = WriteRaw("not_object", R"([1, 2])", 0);
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("header is not a JSON object"));
}

TEST(SafetensorsTest, OffsetPastEndOfDataBuffer) {
  const std::string path = WriteRaw(
      "off_past",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      8);
  EXPECT_THAT(OpenStatus(path).message(),
              AllOf(HasSubstr("'w'"), HasSubstr("[8, 12) extend past the end of the data buffer (8 bytes")));
}

TEST(SafetensorsTest, OverlappingTensors) {
  const std::string path = WriteRaw(
      "overlap",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'b'"), HasSubstr("overlap tensor 'a'")));
}

TEST(SafetensorsTest, GapBetweenTensors) {
  const std::string path = WriteRaw(
      "gap",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})",
      20);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'b'"), HasSubstr("gap of 4 bytes")));
}

TEST(SafetensorsTest, UnusedBytesAfterLastTensor) {
  const std::string path = WriteRaw("tail_gap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12);
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("gap of 4 unused bytes at the end"));
}

TEST(SafetensorsTest, ByteSizeDoesNotMatchShape) {
  const std::string path = WriteRaw("size", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  EXPECT_THAT(OpenStatus(path).message(),
              AllOf(HasSubstr("'w'"), HasSubstr("byte size 8"), HasSubstr("does not match shape [3] x F32 = 12")));
}

TEST(SafetensorsTest, UnsupportedDtypesNamed) {
  for (const char* dtype : {"I64", "F8_E4M3", "F64", "BOOL"}) {
    const std::string header =
        std::string(R"({"w":{"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,8]}})";
    const std::string path = WriteRaw(std::string("dtype_") + dtype, header, 8);
    EXPECT_THAT(OpenStatus(path).message(),
                AllOf(HasSubstr("'w'"), HasSubstr(std::string("unsupported dtype ") + dtype)));
  }
}

TEST(SafetensorsTest, NegativeShape) {
  const std::string path = WriteRaw("neg", R"({"w":{"dtype":"F32","shape":[-1, 2],"data_offsets":[0,0]}})", 0);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'w'"), HasSubstr("non-negative integers")));
}

TEST(SafetensorsTest, FractionalShape) {
  const std::string path = WriteRaw("frac", R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'w'"), HasSubstr("non-negative integers")));
}

TEST(SafetensorsTest, DuplicateName) {
  const std::string path = WriteRaw(
      "dup",
      R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      8);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'w'"), HasSubstr("duplicate tensor name")));
}

TEST(SafetensorsTest, BadDataOffsets) {
  const std::string path = WriteRaw("offs", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4);
  EXPECT_THAT(OpenStatus(path).message(), AllOf(HasSubstr("'w'"), HasSubstr("data_offsets must be [begin, end]")));
}

TEST(SafetensorsTest, MetadataMustBeStrings) {
  const std::string path = WriteRaw("meta", R"({"__metadata__":{"format":1}})", 0);
  EXPECT_THAT(OpenStatus(path).message(), HasSubstr("__metadata__"));
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(OpenStatus(TempPath("does_not_exist")).code(), absl::StatusCode::kNotFound);
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(SafetensorsTest, HalfWideningIsExact) {
  // Bit patterns decoded by hand from the IEEE 754 binary16 definition.
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);               // largest normal
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03FF), 1023.0f * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x3555), 1365.0f / 4096.0f);      // 0.333251953125
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);      // -0
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
}

TEST(SafetensorsTest, BFloat16WideningIsExact) {
  EXPECT_EQ(BFloat16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(BFloat16ToFloat(0xC2F7), -123.5f);
  EXPECT_EQ(Bits(BFloat16ToFloat(0x0001)), 0x00010000u);  // subnormal keeps its bits
  EXPECT_EQ(BFloat16ToFloat(0xFF80), -std::numeric_limits<float>::infinity());
}

TEST(SafetensorsTest, ReadsF16AndBF16TensorsWidened) {
  // Little-endian data: F16 [1.0, -2.0] then BF16 [3.140625, -123.5].
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})";
  const std::string path = TempPath("widen");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((header.size() >> (8 * i)) & 0xff));
    out << header;
    const unsigned char data[8] = {0x00, 0x3C, 0x00, 0xC0, 0x49, 0x40, 0xF7, 0xC2};
    out.write(reinterpret_cast<const char*>(data), 8);
  }
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*file->ReadF32("h"), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(*file->ReadF32("b"), (std::vector<float>{3.140625f, -123.5f}));
  EXPECT_EQ(file->ReadF32("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(SafetensorsTest, WriteReadRoundTrip) {
  const std::vector<float> a = {1.5f, -2.25f, 3e-20f, 7.0f, 0.0f, -0.0f};
  const std::vector<float> scalar = {42.0f};
  const std::vector<float> empty;
  const std::string path = TempPath("roundtrip.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {{"a", {2, 3}, a}, {"s", {}, scalar}, {"e", {0, 4}, empty}},
                               {{"format", "pt"}})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_EQ(file->Find("a")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file->Find("s")->shape, (std::vector<int64_t>{}));
  EXPECT_EQ(file->Find("e")->shape, (std::vector<int64_t>{0, 4}));
  auto read_a = file->ReadF32("a");
  ASSERT_TRUE(read_a.ok());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(Bits((*read_a)[i]), Bits(a[i])) << i;
  EXPECT_EQ(*file->ReadF32("s"), scalar);
  EXPECT_TRUE(file->ReadF32("e")->empty());
  // The data buffer starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST(SafetensorsTest, WriterRejectsSizeMismatchAndDuplicates) {
  const std::vector<float> v = {1, 2, 3};
  EXPECT_THAT(WriteSafetensors(TempPath("bad1"), {{"x", {2, 2}, v}}).message(), HasSubstr("'x'"));
  EXPECT_THAT(WriteSafetensors(TempPath("bad2"), {{"x", {3}, v}, {"x", {3}, v}}).message(), HasSubstr("duplicate"));
}

}  // namespace
}  // namespace llama
