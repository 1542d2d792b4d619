// The element type of the CPU backend's paged KV cache (--kv_dtype) and the scalar conversions to and from it.
//
// f16 and bf16 halve the cache's bytes (twice the blocks for the same --kv_cache_bytes, half the bytes attention
// reads per key). Only the storage is narrow: K/V rows are rounded once when written (round to nearest, ties to
// even) and widened exactly when read, so attention does the same fp32 math as with an fp32 cache, on values that
// each carry one rounding (relative error <= 2^-11 for f16, 2^-8 for bf16).
//
// These functions are built for baseline x86-64 (not per ISA): the scalar kernels call them, the AVX2/AVX-512
// kernels use F16C or integer vector code that must give the same bits (tests/engine/cpu/kv_dtype_test.cc).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace llama {

enum class KvDtype { kF32, kF16, kBf16 };

const char* KvDtypeName(KvDtype dtype);  // "f32", "f16", "bf16"
// The name as --kv_dtype takes it; INVALID_ARGUMENT naming the flag and the allowed values otherwise.
absl::StatusOr<KvDtype> ParseKvDtype(const std::string& name);
int KvDtypeBytes(KvDtype dtype);  // 4 or 2

// fp32 → IEEE binary16, round to nearest even: overflow (|x| >= 65520) to ±inf, results below 2^-14 as subnormals,
// NaN to a quiet NaN with the top 10 payload bits (exactly what F16C's vcvtps2ph does with imm8 = RNE).
uint16_t FloatToF16(float x);
// binary16 → fp32, exact (every half is an fp32); a signaling NaN comes back quiet, as from vcvtph2ps.
float F16ToFloat(uint16_t h);
// fp32 → bfloat16 (the top 16 bits), round to nearest even; NaN stays NaN (quiet bit set, sign kept); no flushing
// of subnormals.
uint16_t FloatToBf16(float x);
// bfloat16 → fp32, exact (the bits shifted into the top half).
float Bf16ToFloat(uint16_t b);

}  // namespace llama
