// PackedQ8: y = x · Wᵀ with W quantized to q8_0 (blocks of 32 int8 values along k with one scale) and repacked
// into row panels that the kernel reads as one sequential stream; the activations are quantized the same way per
// token, so every block's dot product is an exact int8 × int8 → int32 sum.
//
// Quantization (weights and activations alike, llama.cpp's Q8_0 rule): per row and 32-block, d = max|w| / 127 and
// q = round(w · (1 / d)) (roundf: halves away from zero), clamped to [-127, 127]; d = 0 (an all-zero block) stores
// q = 0. d is kept as fp32 (not fp16: 4 bytes per 32 instead of 2, ~6% more bytes to stream, but no rounding of
// the scale and no fp16 conversion on the scalar path).
//
// Layout: rows in panels of kPanelRows = 64 (packed_matmul.h), 16-row vectors as there; a panel with V vectors
// (V = 4 except in the last panel, which holds ceil(rows / 16) vectors, zero-padded) stores, for each 32-block
// b = 0, 1, ..., one chunk of 9 slabs of V · 64 bytes:
//   slab 0:      the scales d[b] of the panel's V · 16 rows (fp32),
//   slab 1 + g:  for g = 0..7 (k = 32b + 4g .. 32b + 4g + 3), for each row, its 4 int8 values q[r, k .. k + 3].
// So the 64 bytes of vector v in slab 1 + g are 16 rows × 4 consecutive k: one AVX-512 register whose 32-bit lane
// i is row 16v + i (the VNNI layout: vpdpbusd multiplies it by the 4 bytes of x[t, k .. k + 3] broadcast to
// every lane and adds the 4 products into lane i); AVX2 takes the two 32-byte halves (8 rows each).
//
// Why this layout: as in packed_matmul.h, the kernel is a register-blocked outer product (up to 4 row vectors ×
// several tokens), with no horizontal reductions: after the 8 slabs of a block each int32 lane holds that row's
// exact block sum, which the per-block scales (the chunk's slab 0, loaded right before) turn into one fp32 update.
// Single-token decode reads the whole matrix once, front to back, 36 bytes per 32 weights; a batch reuses each
// loaded vector for every token of its tile.
//
// The combine and batch invariance: y[t, r] = acc after, for b = 0, 1, ..., blocks - 1 in order,
//   acc = fma(d_w[r, b] · d_x[t, b], float(isum_b), acc)      (acc starts at 0; then y += acc when accumulating)
// with isum_b the exact int32 dot product of the block (|isum_b| <= 32 · 127² < 2^24, so float(isum_b) is exact).
// The integer sums are exact whatever the instruction sequence (VNNI, maddubs/madd, scalar), and every path does
// this same float chain, so the scalar, AVX2, AVX-512 and AVX-512 VNNI paths agree bit for bit, and the result of
// a token does not depend on n, on its token tile, on the row range nor on the thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/cpu/packed_matmul.h"

namespace llama {

constexpr int kQ8Block = 32;  // k values per quantization block (in % 32 == 0 is required)

// Bytes a packed q8_0 [out, in] matrix takes; rows are packed in panels of kPanelRows = 64.
size_t PackedQ8Bytes(int out, int in);

// Byte offset of panel p (rows [64p, min(out, 64p + 64))) inside the packed matrix.
size_t PackedQ8PanelOffset(int out, int in, int panel);

// Quantizes and packs one panel: rows = those rows of w in fp32 ([num_rows, in], row-major, 1 <= num_rows <= 64),
// written at dst = packed + PackedQ8PanelOffset(out, in, panel) (all of the panel's bytes, padding included).
void PackPanelQ8(const float* rows, int num_rows, int in, uint8_t* dst);

// Row `row` dequantized: out_row[k] = d * q (for embedding lookups).
void UnpackRowQ8(const uint8_t* packed, int out, int in, int row, float* out_row);

// Activations quantized per token and 32-block by the same rule: per token, in int8 values then in / 32 fp32
// scales (in · 9 / 8 bytes). The kernel's left operand.
size_t QuantizedActivationBytes(int n, int in);
void QuantizeActivations(const float* x, int n, int in, uint8_t* xq);

// y[t, r] (+)= the block chain above, for t in [0, n) and r in [row_begin, row_end). Same contract as
// PackedMatMulRows: any range; 16-row vectors that straddle its ends are computed whole and stored in part, so
// callers should split on multiples of 16.
//   xq: QuantizeActivations of x [n, in]   packed: the PackPanelQ8 panels of w [out, in]   y: [n, out]
void PackedQ8MatMulRows(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out, int row_begin,
                        int row_end, bool accumulate);

}  // namespace llama
