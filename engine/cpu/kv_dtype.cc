#include "engine/cpu/kv_dtype.h"

#include <cstring>

namespace llama {
namespace {

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

}  // namespace

const char* KvDtypeName(KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return "f32";
    case KvDtype::kF16:
      return "f16";
    case KvDtype::kBf16:
      return "bf16";
  }
  return "unknown";
}

absl::StatusOr<KvDtype> ParseKvDtype(const std::string& name) {
  for (KvDtype dtype : {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16}) {
    if (name == KvDtypeName(dtype)) return dtype;
  }
  return absl::InvalidArgumentError("--kv_dtype must be f32, f16 or bf16, got '" + name + "'");
}

int KvDtypeBytes(KvDtype dtype) { return dtype == KvDtype::kF32 ? 4 : 2; }

uint16_t FloatToF16(float x) {
  const uint32_t u = Bits(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | 0x7E00u | ((a >> 13) & 0x3FFu);  // NaN: quiet, top payload bits
  if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520, halfway above 65504 (odd mantissa): inf
  if (a >= 0x38800000u) {                        // >= 2^-14: a normal half
    const uint32_t m = a - 0x38000000u;          // rebias the exponent 127 → 15
    return sign | static_cast<uint16_t>((m + 0xFFFu + ((m >> 13) & 1u)) >> 13);  // RNE; a carry bumps the exponent
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25, half of the smallest subnormal: ties to even 0
  // A subnormal half: units of 2^-24. a = 1.m · 2^(e - 127) = mant · 2^(e - 150), so units = mant >> (126 - e).
  const int e = static_cast<int>(a >> 23);  // 102..112
  const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
  const int shift = 126 - e;  // 14..24
  uint32_t q = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may reach 0x400, the smallest normal: the right encoding
  return sign | static_cast<uint16_t>(q);
}

float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0x1Fu) return FromBits(sign | 0x7F800000u | (mant != 0 ? 0x400000u : 0u) | (mant << 13));
  if (exp != 0) return FromBits(sign | ((exp + 112) << 23) | (mant << 13));
  const float magnitude = static_cast<float>(mant) * 0x1p-24f;  // zero or subnormal: exact
  return sign != 0 ? -magnitude : magnitude;
}

uint16_t FloatToBf16(float x) {
  const uint32_t u = Bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float Bf16ToFloat(uint16_t b) { return FromBits(static_cast<uint32_t>(b) << 16); }

}  // namespace llama
