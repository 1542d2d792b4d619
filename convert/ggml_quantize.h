// fp32 → the storage types the GGUF writer emits, with ggml's reference rounding (its quantize_row_*_ref and
// fp32→fp16/bf16 conversions: written here from the algorithms, not copied), so files we write hold the blocks
// llama.cpp itself would write for the same values.
//   F16 / BF16: round to nearest, ties to even (overflow to ±inf; NaN stays NaN).
//   Q8_0 (per block of 32): d = max|x| / 127, q = round(x / d) (ties away from zero), d stored as fp16.
//   Q4_0 (per block of 32): m = the value of largest magnitude, d = m / -8, q = min(15, trunc(x / d + 8.5)) stored
//   as 4-bit codes (value i in the low nibble of byte i, value i + 16 in its high nibble), d stored as fp16.
#pragma once

#include <cstdint>

namespace llama {

uint16_t FloatToHalf(float f);
uint16_t FloatToBFloat16(float f);

// n (a multiple of 32) values → n / 32 blocks of 34 (Q8_0) or 18 (Q4_0) bytes at out.
void QuantizeQ8_0(const float* x, int64_t n, uint8_t* out);
void QuantizeQ4_0(const float* x, int64_t n, uint8_t* out);

}  // namespace llama
