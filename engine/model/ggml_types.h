// The ggml tensor types a GGUF file can hold: each type's id, name, block size (elements) and bytes per block, as
// ggml defines them (ggml's docs/gguf.md, `enum ggml_type`), so the GGUF reader can check every tensor's byte size
// and placement whatever its type; and the conversions to fp32 of the types this engine reads.
//
// Block layouts (little-endian), blocks run along a row (ggml's ne[0], the input dimension of a matrix):
//   Q8_0: fp16 scale d, then 32 int8 q:                     x[i] = d * q[i]                  (34 bytes / 32 values)
//   Q4_0: fp16 scale d, then 16 bytes of 4-bit codes:       x[i] = d * ((qs[i] & 15) - 8),
//                                                           x[i + 16] = d * ((qs[i] >> 4) - 8)  (18 bytes / 32)
#pragma once

#include <cstdint>

namespace llama {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;      // "Q8_0"
  int64_t block_size;    // elements per block
  int64_t block_bytes;   // bytes per block
};

// nullptr for an id ggml does not define for files (removed ones such as 4, 5, 31-33, and Q8_1 = 9).
const GgmlTypeTraits* FindGgmlType(uint32_t id);
const GgmlTypeTraits& GgmlTraits(GgmlType type);  // type must be one of the enumerators

inline constexpr int64_t kQ8_0BlockBytes = 34;
inline constexpr int64_t kQ4_0BlockBytes = 18;
inline constexpr int64_t kQuantBlock = 32;  // values per Q8_0 / Q4_0 block

// Whether ToFloat32 converts the type: F32, F16, BF16, Q8_0, Q4_0.
bool IsReadableGgmlType(GgmlType type);

// n values (a multiple of the type's block size) stored as `type` at src (no alignment needed) as fp32 into
// out[n]. F16/BF16 widening is exact; Q8_0/Q4_0 compute d * q in fp32 with d widened from fp16 (as ggml does).
// The type must be readable (CHECKed).
void ToFloat32(GgmlType type, const uint8_t* src, int64_t n, float* out);

}  // namespace llama
