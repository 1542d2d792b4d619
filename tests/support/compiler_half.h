// The reference for our fp16 rounding: the compiler's _Float16 (GCC 12, clang >= 15). clang 14, which the sanitizer
// and fuzz builds use, has no _Float16 on x86; there the CPU's own F16C conversion (round to nearest even) is the
// reference instead, equally independent of our code.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__clang__) && __clang_major__ < 15
#include <immintrin.h>
#endif

namespace llama::testing {

#if defined(__clang__) && __clang_major__ < 15
__attribute__((target("f16c"))) inline uint16_t CompilerHalfBits(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) inline float CompilerHalfToFloat(uint16_t bits) { return _cvtsh_ss(bits); }
#else
inline uint16_t CompilerHalfBits(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
inline float CompilerHalfToFloat(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}
#endif

}  // namespace llama::testing
