#include "engine/model/ggml_types.h"

#include <cstring>

#include "base/check.h"
#include "engine/model/safetensors.h"

namespace llama {
namespace {

// ggml's type table (blck_size, type_size), the ids GGUF files may carry. Q8_1 (9) is left out: it is ggml's
// intermediate type for dot products, never stored in a file.
constexpr GgmlTypeTraits kTypes[] = {
    {GgmlType::kF32, "F32", 1, 4},           {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", 32, 18},       {GgmlType::kQ4_1, "Q4_1", 32, 20},
    {GgmlType::kQ5_0, "Q5_0", 32, 22},       {GgmlType::kQ5_1, "Q5_1", 32, 24},
    {GgmlType::kQ8_0, "Q8_0", 32, 34},
    {GgmlType::kQ2_K, "Q2_K", 256, 84},      {GgmlType::kQ3_K, "Q3_K", 256, 110},
    {GgmlType::kQ4_K, "Q4_K", 256, 144},     {GgmlType::kQ5_K, "Q5_K", 256, 176},
    {GgmlType::kQ6_K, "Q6_K", 256, 210},     {GgmlType::kQ8_K, "Q8_K", 256, 292},
    {GgmlType::kIQ2_XXS, "IQ2_XXS", 256, 66}, {GgmlType::kIQ2_XS, "IQ2_XS", 256, 74},
    {GgmlType::kIQ3_XXS, "IQ3_XXS", 256, 98}, {GgmlType::kIQ1_S, "IQ1_S", 256, 50},
    {GgmlType::kIQ4_NL, "IQ4_NL", 32, 18},   {GgmlType::kIQ3_S, "IQ3_S", 256, 110},
    {GgmlType::kIQ2_S, "IQ2_S", 256, 82},    {GgmlType::kIQ4_XS, "IQ4_XS", 256, 136},
    {GgmlType::kI8, "I8", 1, 1},             {GgmlType::kI16, "I16", 1, 2},
    {GgmlType::kI32, "I32", 1, 4},           {GgmlType::kI64, "I64", 1, 8},
    {GgmlType::kF64, "F64", 1, 8},           {GgmlType::kIQ1_M, "IQ1_M", 256, 56},
    {GgmlType::kBF16, "BF16", 1, 2},         {GgmlType::kTQ1_0, "TQ1_0", 256, 54},
    {GgmlType::kTQ2_0, "TQ2_0", 256, 66},    {GgmlType::kMXFP4, "MXFP4", 32, 17},
};

uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

const GgmlTypeTraits* FindGgmlType(uint32_t id) {
  for (const GgmlTypeTraits& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

const GgmlTypeTraits& GgmlTraits(GgmlType type) {
  const GgmlTypeTraits* t = FindGgmlType(static_cast<uint32_t>(type));
  CHECK(t != nullptr);
  return *t;
}

bool IsReadableGgmlType(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kBF16:
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
      return true;
    default:
      return false;
  }
}

void ToFloat32(GgmlType type, const uint8_t* src, int64_t n, float* out) {
  CHECK(IsReadableGgmlType(type));
  CHECK_EQ(n % GgmlTraits(type).block_size, 0);
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(out, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToFloat(Load16(src + 2 * i));
      return;
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = BFloat16ToFloat(Load16(src + 2 * i));
      return;
    case GgmlType::kQ8_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b, src += kQ8_0BlockBytes, out += kQuantBlock) {
        const float d = HalfToFloat(Load16(src));
        for (int i = 0; i < kQuantBlock; ++i) out[i] = d * static_cast<float>(static_cast<int8_t>(src[2 + i]));
      }
      return;
    case GgmlType::kQ4_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b, src += kQ4_0BlockBytes, out += kQuantBlock) {
        const float d = HalfToFloat(Load16(src));
        for (int i = 0; i < kQuantBlock / 2; ++i) {
          out[i] = d * static_cast<float>((src[2 + i] & 0x0f) - 8);
          out[i + kQuantBlock / 2] = d * static_cast<float>((src[2 + i] >> 4) - 8);
        }
      }
      return;
    default:
      return;
  }
}

}  // namespace llama
