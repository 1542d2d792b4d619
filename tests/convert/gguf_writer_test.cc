// Our GGUF writer's number formats and layout. The fp16 rounding is checked against the compiler's _Float16
// conversion (IEEE round-to-nearest-even, an implementation independent of ours); Q8_0/Q4_0 against reference
// quantizers written out in this test from ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref; and the property
// that Q8_0 blocks survive dequantize → requantize unchanged (what a backend that requantizes GGUF rows to its own
// q8_0 storage relies on to lose nothing). The file layout is read back with our reader (whose rules
// tests/engine/model/gguf_test.cc checks on hand-assembled bytes).
#include "convert/gguf_writer.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "convert/ggml_quantize.h"
#include "engine/model/ggml_types.h"
#include "engine/model/gguf.h"
#include "engine/model/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/compiler_half.h"

namespace llama {
namespace {

using ::testing::HasSubstr;

uint16_t CompilerHalf(float f) { return testing::CompilerHalfBits(f); }

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// ggml's quantize_row_q8_0_ref: d = max|x| / 127 stored as fp16, q = round(x · (1/d)).
std::vector<uint8_t> RefQ8_0(const std::vector<float>& x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = CompilerHalf(d);
    out.push_back(dh & 0xff);
    out.push_back(dh >> 8);
    for (int i = 0; i < 32; ++i) out.push_back(static_cast<uint8_t>(static_cast<int8_t>(roundf(x[b + i] * id))));
  }
  return out;
}

// ggml's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8, q = min(15, (int8)(x/d + 8.5)).
std::vector<uint8_t> RefQ4_0(const std::vector<float>& x) {
  std::vector<uint8_t> out;
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0, max = 0;
    for (int i = 0; i < 32; ++i) {
      if (amax < std::fabs(x[b + i])) {
        amax = std::fabs(x[b + i]);
        max = x[b + i];
      }
    }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    const uint16_t dh = CompilerHalf(d);
    out.push_back(dh & 0xff);
    out.push_back(dh >> 8);
    for (int j = 0; j < 16; ++j) {
      const uint8_t lo = std::min<int8_t>(15, static_cast<int8_t>(x[b + j] * id + 8.5f));
      const uint8_t hi = std::min<int8_t>(15, static_cast<int8_t>(x[b + 16 + j] * id + 8.5f));
      out.push_back(static_cast<uint8_t>(lo | (hi << 4)));
    }
  }
  return out;
}

// Random rows at magnitudes from 1e-4 to 1e4, plus blocks of one spike, all equal, all zero, a negative extreme.
std::vector<float> TestValues() {
  std::mt19937 rng(17);
  std::normal_distribution<float> normal;
  std::vector<float> x;
  for (float scale : {1e-4f, 3e-3f, 0.02f, 1.0f, 37.0f, 1e4f}) {
    for (int i = 0; i < 32 * 64; ++i) x.push_back(scale * normal(rng));
  }
  std::vector<float> spike(32, 0.0f), equal(32, 0.7f), zero(32, 0.0f), neg(32, 0.1f);
  spike[5] = 3.0f;
  neg[31] = -9.0f;
  for (auto* block : {&spike, &equal, &zero, &neg}) x.insert(x.end(), block->begin(), block->end());
  return x;
}

std::vector<float> Dequantize(GgmlType type, const std::vector<uint8_t>& blocks, size_t n) {
  std::vector<float> out(n);
  ToFloat32(type, blocks.data(), static_cast<int64_t>(n), out.data());
  return out;
}

TEST(GgmlQuantizeTest, FloatToHalfMatchesTheCompilersConversion) {
  // Every fp16 value, every midpoint between neighbours (the ties), and a sweep over all fp32 exponents.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float v = HalfToFloat(static_cast<uint16_t>(h));
    const float next = HalfToFloat(static_cast<uint16_t>(h + 1));
    for (float f : {v, -v, (v + next) / 2, -(v + next) / 2}) ASSERT_EQ(FloatToHalf(f), CompilerHalf(f)) << f;
  }
  for (uint32_t bits = 0; bits < 0x7f800000u; bits += 4093) {
    ASSERT_EQ(FloatToHalf(FromBits(bits)), CompilerHalf(FromBits(bits))) << bits;
  }
  EXPECT_EQ(FloatToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(FloatToHalf(-65520.0f), 0xfc00);  // rounds past the largest half, 65504
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
}

TEST(GgmlQuantizeTest, FloatToBFloat16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3f808001u)), 0x3f81);  // above the tie
  EXPECT_EQ(FloatToBFloat16(-3.0f), 0xc040);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
}

TEST(GgmlQuantizeTest, QuantizersMatchTheReference) {
  const std::vector<float> x = TestValues();
  std::vector<uint8_t> q8(x.size() / 32 * kQ8_0BlockBytes), q4(x.size() / 32 * kQ4_0BlockBytes);
  QuantizeQ8_0(x.data(), static_cast<int64_t>(x.size()), q8.data());
  QuantizeQ4_0(x.data(), static_cast<int64_t>(x.size()), q4.data());
  EXPECT_EQ(q8, RefQ8_0(x));
  EXPECT_EQ(q4, RefQ4_0(x));
}

// |x − x'| ≤ d/2 (rounding q) + 127 · |d − fp16(d)| (the stored scale) with |d − fp16(d)| ≤ 2^-11 d for normal
// fp16 (2^-25 absolute below 2^-14), plus fp32 rounding; Q4_0: one step d (the clamp of the value opposite to the
// extreme) + 8 · |d − fp16(d)|.
TEST(GgmlQuantizeTest, DequantizedValuesAreWithinTheStatedBounds) {
  const std::vector<float> x = TestValues();
  const std::vector<float> x8 = Dequantize(GgmlType::kQ8_0, RefQ8_0(x), x.size());
  const std::vector<float> x4 = Dequantize(GgmlType::kQ4_0, RefQ4_0(x), x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b + i]));
    const float d8 = amax / 127, d4 = amax / 8;
    const float scale_err8 = std::max(d8 * 0x1p-11f, 0x1p-25f), scale_err4 = std::max(d4 * 0x1p-11f, 0x1p-25f);
    for (int i = 0; i < 32; ++i) {
      ASSERT_LE(std::fabs(x8[b + i] - x[b + i]), (d8 / 2 + 127 * scale_err8) * (1 + 1e-5f) + 1e-30f) << b + i;
      ASSERT_LE(std::fabs(x4[b + i] - x[b + i]), (d4 + 8 * scale_err4) * (1 + 1e-5f) + 1e-30f) << b + i;
    }
  }
}

TEST(GgmlQuantizeTest, Q8_0BlocksSurviveDequantizeAndRequantize) {
  const std::vector<float> x = TestValues();
  const std::vector<uint8_t> blocks = RefQ8_0(x);
  EXPECT_EQ(RefQ8_0(Dequantize(GgmlType::kQ8_0, blocks, x.size())), blocks);
  std::vector<uint8_t> ours(blocks.size());
  const std::vector<float> dequantized = Dequantize(GgmlType::kQ8_0, blocks, x.size());
  QuantizeQ8_0(dequantized.data(), static_cast<int64_t>(x.size()), ours.data());
  EXPECT_EQ(ours, blocks);
}

TEST(GgufWriterTest, WritesEveryValueTypeAlignmentAndVersion) {
  GgufWriter w(/*version=*/2, /*alignment=*/64);
  w.Set("a.u8", GgufWriteValue::Scalar(GgufValueType::kUint8, 7));
  w.Set("a.i16", GgufWriteValue::Scalar(GgufValueType::kInt16, 0xfffe));
  w.Set("a.f64", GgufWriteValue::Scalar(GgufValueType::kFloat64, 0x3ff8000000000000ull));  // 1.5
  w.Set("a.s", GgufWriteValue::Str("text"));
  w.Set("a.b", GgufWriteValue::Bool(true));
  w.Set("a.nested", GgufWriteValue::Array(GgufValueType::kArray,
                                          {GgufWriteValue::Array(GgufValueType::kFloat32, {GgufWriteValue::F32(2.5f)})}));
  w.Set("a.u8", GgufWriteValue::Scalar(GgufValueType::kUint8, 9));  // replaces in place
  const std::string half_row(2 * 32, '\x3c');
  w.AddTensor({"t0", {32}, GgmlType::kF16, [&] { return absl::StatusOr<std::string>(half_row); }});
  w.AddTensor({"t1", {32, 3}, GgmlType::kQ8_0, [] { return absl::StatusOr<std::string>(std::string(3 * 34, '\1')); }});
  const std::string path = ::testing::TempDir() + "/gguf_writer_test.gguf";
  ASSERT_TRUE(w.Write(path).ok());
  auto file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->version(), 2u);
  EXPECT_EQ(file->alignment(), 64u);
  EXPECT_EQ(file->metadata().front().first, "a.u8");
  EXPECT_EQ(*file->GetUint("a.u8", 255), 9u);
  EXPECT_EQ(file->Find("a.i16")->int_value, -2);
  EXPECT_EQ(*file->GetFloat("a.f64"), 1.5);
  EXPECT_EQ(*file->GetString("a.s"), "text");
  EXPECT_TRUE(*file->GetBool("a.b"));
  auto nested = GgufArrayElements(**file->GetArray("a.nested", GgufValueType::kArray));
  EXPECT_EQ(GgufArrayElements(nested[0])[0].float_value, 2.5);
  ASSERT_EQ(file->tensors().size(), 2u);
  EXPECT_EQ(file->tensors()[1].offset, 64u);  // 64 bytes of t0, already aligned
  EXPECT_EQ(file->data_offset() % 64, 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(file->TensorData(file->tensors()[0])), 64), half_row);
}

TEST(GgufWriterTest, TensorBytesMustMatchDimsAndType) {
  GgufWriter w;
  w.AddTensor({"t", {32, 2}, GgmlType::kQ8_0, [] { return absl::StatusOr<std::string>(std::string(34, '\0')); }});
  const absl::Status s = w.Write(::testing::TempDir() + "/gguf_writer_test_bad.gguf");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 't' has 34 bytes, its dims and type need 68"));
  EXPECT_EQ(ParseGgufMatrixType("q5_k").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseGgufMatrixType("q8_0"), GgmlType::kQ8_0);
}

}  // namespace
}  // namespace llama
