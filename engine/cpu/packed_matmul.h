// PackedMatMul: y = x · Wᵀ with W repacked once so that a row tile is one sequential stream of memory.
//
// Layout: rows in tiles of 4; a tile stores its k-blocks of 16 one after another, each block holding the 4 rows'
// 16 values: [ceil(out / 4)][ceil(in / 16)][4][16], zero-padded at the row and column ends. The plain row-major
// kernel (matmul.h) reads 4 rows as 4 streams 4·in bytes apart; on the EPYC here that pattern streamed at ~12 GB/s
// on one core while the same bytes read in order streamed at 40+ GB/s, and a decode step is nothing but streaming
// the weights. Results equal MatMulRows's bit for bit (same per-element operation order).
#pragma once

#include <cstddef>
#include <cstdint>

namespace llama {

constexpr int kPackRows = 4;   // rows per tile
constexpr int kPackCols = 16;  // values per k-block

// Floats a packed [out, in] matrix takes.
size_t PackedSize(int out, int in);

// packed[PackedSize(out, in)] = the packing of w [out, in].
void PackWeights(const float* w, int out, int in, float* packed);

// Row `row` of the original matrix: out_row[0, in) = w[row, :].
void UnpackRow(const float* packed, int in, int row, float* out_row);

// y[t, r] (+)= sum_k x[t, k] * w[r, k] for t in [0, n) and r in [row_begin, row_end) (any range; tiles that
// straddle its ends are computed whole and stored in part).
//   x: [n, in]   packed: PackWeights of w [out, in]   y: [n, out]
void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate);

}  // namespace llama
