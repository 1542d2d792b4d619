// PackedMatMul: y = x · Wᵀ with W repacked once into row panels that are read as one sequential stream.
//
// Layout: rows in panels of kPanelRows = 64; panel p stores, for k = 0, 1, ..., in - 1, the values w[r, k] of its
// rows next to each other: [ceil(out / 64)][in][64 rows]. The last panel holds only ceil(rows / 16) · 16 rows
// (zero-padded to the 16-lane vector). A 16-row vector of one k is one AVX-512 register.
//
// Why this layout: the kernel is the register-blocked outer product acc[v][t] += W[k][v] · broadcast(x[t][k]) for
// up to 4 row vectors × 6 tokens: no horizontal reductions, each packed vector is loaded once per 6 tokens, and
// single-stream decode (one token) still reads the weights in memory order (4 independent 16-row accumulators,
// 256 contiguous bytes per k), as the earlier [tile][k-block][4 rows][16] layout did.
//
// Batch invariance: every element y[t, r] is ONE fused-multiply-add chain over k = 0, 1, ..., in - 1 starting from
// 0 (then added to y when accumulating), whatever n is, whichever token tile t falls in and whichever row range or
// thread computes row r. So a sequence's outputs do not depend on the rest of the batch, bit for bit. The AVX2 and
// portable paths (std::fma) perform the same chain, so they agree with AVX-512 bit for bit too. The order differs
// from MatMulRows (matmul.h), which sums 16 lanes then reduces; the two agree within fp32 rounding.
//
// bf16 panels: the same layout with uint16 bf16 values (the high 16 bits of an fp32). The kernel widens each value
// to fp32 (exact: a shift) and runs the same fma chain, so a bf16 matrix gives exactly what an fp32 matrix holding
// the widened values gives, on every ISA, and batch invariance holds as for fp32.
#pragma once

#include <cstddef>
#include <cstdint>

namespace llama {

constexpr int kPackLanes = 16;                         // rows per vector (one AVX-512 register)
constexpr int kPanelVectors = 4;                       // vectors per panel
constexpr int kPanelRows = kPackLanes * kPanelVectors;  // rows per panel

// Floats a packed [out, in] matrix takes.
size_t PackedSize(int out, int in);

// packed[PackedSize(out, in)] = the packing of w [out, in].
void PackWeights(const float* w, int out, int in, float* packed);

// Row `row` of the original matrix: out_row[0, in) = w[row, :].
void UnpackRow(const float* packed, int out, int in, int row, float* out_row);

// Elements (floats or bf16 values) before panel p of a packed [out, in] matrix (panel p = rows [64 p, 64 p + 64)).
size_t PanelOffset(int in, int panel);

// Packs one panel: rows [num_rows (<= 64), in] row-major (rows 64 p .. of the matrix) into dst = packed +
// PanelOffset(in, p), zero-padding to whole 16-row vectors. Packing every panel equals PackWeights.
void PackPanel(const float* rows, int num_rows, int in, float* dst);

// bf16 panels hold FloatToBf16 of each value (kv_dtype.h: round to nearest even, NaN stays a quiet NaN, beyond the
// range rounds to infinity; a value that is already a bf16, e.g. from a bf16 checkpoint, converts exactly).

// The bf16 counterparts of PackPanel, UnpackRow and PackedMatMulRows (same layout, sizes in elements).
void PackPanelBf16(const float* rows, int num_rows, int in, uint16_t* dst);
void UnpackRowBf16(const uint16_t* packed, int out, int in, int row, float* out_row);
void PackedMatMulRowsBf16(const float* x, const uint16_t* packed, float* y, int n, int in, int out, int row_begin,
                          int row_end, bool accumulate);

// y[t, r] (+)= sum_k x[t, k] * w[r, k] for t in [0, n) and r in [row_begin, row_end) (any range; 16-row vectors
// that straddle its ends are computed whole and stored in part, so callers should split on multiples of 16).
//   x: [n, in]   packed: PackWeights of w [out, in]   y: [n, out]
void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate);

}  // namespace llama
