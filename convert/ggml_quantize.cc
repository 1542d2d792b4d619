#include "convert/ggml_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/check.h"
#include "engine/model/ggml_types.h"

namespace llama {
namespace {

void Store16(uint16_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

}  // namespace

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds to infinity
  if (abs < 0x38800000u) {
    // Below 2^-14: a half subnormal, m · 2^-24. Scaling by 2^24 is exact; nearbyint rounds ties to even (and
    // 1024 is the smallest normal half's bit pattern, so the boundary rounds correctly too).
    float v;
    std::memcpy(&v, &abs, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(v * 16777216.0f));
  }
  abs += 0xfffu + ((abs >> 13) & 1);  // round the 23-bit mantissa to 10 bits, ties to even (a carry bumps the exponent)
  return sign | static_cast<uint16_t>((abs - (112u << 23)) >> 13);  // rebias 127 → 15
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

void QuantizeQ8_0(const float* x, int64_t n, uint8_t* out) {
  CHECK_EQ(n % kQuantBlock, 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock, out += kQ8_0BlockBytes) {
    float amax = 0;
    for (int i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    Store16(FloatToHalf(d), out);
    for (int i = 0; i < kQuantBlock; ++i) out[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[i] * id)));
  }
}

void QuantizeQ4_0(const float* x, int64_t n, uint8_t* out) {
  CHECK_EQ(n % kQuantBlock, 0);
  for (int64_t b = 0; b < n / kQuantBlock; ++b, x += kQuantBlock, out += kQ4_0BlockBytes) {
    float amax = 0, max = 0;
    for (int i = 0; i < kQuantBlock; ++i) {
      if (amax < std::fabs(x[i])) {
        amax = std::fabs(x[i]);
        max = x[i];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    Store16(FloatToHalf(d), out);
    for (int i = 0; i < kQuantBlock / 2; ++i) {
      // x / d + 8.5 lies in [0.5, 16.5]: truncation is floor, and the one value of opposite sign to m that
      // reaches 16 is clamped to 15.
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[i] * id + 8.5f)));
      const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[i + kQuantBlock / 2] * id + 8.5f)));
      out[2 + i] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

}  // namespace llama
