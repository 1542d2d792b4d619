#include "engine/cpu/packed_matmul.h"

#include <cstring>

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12 flags the intrinsics' internal _mm512_undefined_ps() inside _mm512_reduce_add_ps (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace llama {
namespace {

constexpr int kTokenTile = 4;

inline int KBlocks(int in) { return (in + kPackCols - 1) / kPackCols; }
inline size_t TileFloats(int in) { return static_cast<size_t>(KBlocks(in)) * kPackRows * kPackCols; }

inline void Store(float* dst, float v, bool accumulate) { *dst = accumulate ? *dst + v : v; }

#if defined(__AVX512F__)

// One row tile × T tokens. The last k-block of x is loaded masked; the packed weights are zero there anyway.
template <int T>
void Tile(const float* x, const float* tile, float* y, int in, int out, int r0, int lo, int hi, int t0,
          bool accumulate) {
  __m512 acc[kPackRows][T];
  for (int r = 0; r < kPackRows; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  const int blocks = KBlocks(in);
  const int tail = in - (blocks - 1) * kPackCols;
  const __mmask16 tail_mask = static_cast<__mmask16>((1u << tail) - 1);
  for (int b = 0; b < blocks; ++b) {
    const float* wb = tile + static_cast<size_t>(b) * kPackRows * kPackCols;
    __m512 wv[kPackRows];
    for (int r = 0; r < kPackRows; ++r) wv[r] = _mm512_loadu_ps(wb + r * kPackCols);
    const __mmask16 m = b + 1 < blocks ? static_cast<__mmask16>(0xFFFF) : tail_mask;
    for (int t = 0; t < T; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + static_cast<int64_t>(t0 + t) * in + b * kPackCols);
      for (int r = 0; r < kPackRows; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = lo - r0; r < hi - r0; ++r)
      Store(y + static_cast<int64_t>(t0 + t) * out + r0 + r, _mm512_reduce_add_ps(acc[r][t]), accumulate);
}

#elif defined(__AVX2__)

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Each 16-value block as two 8-lane halves; the x tail is copied into a zero-padded block.
template <int T>
void Tile(const float* x, const float* tile, float* y, int in, int out, int r0, int lo, int hi, int t0,
          bool accumulate) {
  __m256 acc[kPackRows][T];
  for (int r = 0; r < kPackRows; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  const int blocks = KBlocks(in);
  for (int b = 0; b < blocks; ++b) {
    const float* wb = tile + static_cast<size_t>(b) * kPackRows * kPackCols;
    const int valid = in - b * kPackCols < kPackCols ? in - b * kPackCols : kPackCols;
    for (int h = 0; h < kPackCols; h += 8) {
      __m256 wv[kPackRows];
      for (int r = 0; r < kPackRows; ++r) wv[r] = _mm256_loadu_ps(wb + r * kPackCols + h);
      for (int t = 0; t < T; ++t) {
        const float* xb = x + static_cast<int64_t>(t0 + t) * in + b * kPackCols;
        alignas(32) float padded[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        __m256 xv;
        if (valid >= h + 8) {
          xv = _mm256_loadu_ps(xb + h);
        } else {
          for (int i = h; i < valid; ++i) padded[i - h] = xb[i];
          xv = _mm256_load_ps(padded);
        }
        for (int r = 0; r < kPackRows; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
      }
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = lo - r0; r < hi - r0; ++r)
      Store(y + static_cast<int64_t>(t0 + t) * out + r0 + r, HorizontalSum(acc[r][t]), accumulate);
}

#else

// Portable fallback (the same sums, in another order: only the AVX-512 build is bit-equal to MatMulRows).
template <int T>
void Tile(const float* x, const float* tile, float* y, int in, int out, int r0, int lo, int hi, int t0,
          bool accumulate) {
  const int blocks = KBlocks(in);
  for (int t = 0; t < T; ++t) {
    const float* xt = x + static_cast<int64_t>(t0 + t) * in;
    for (int r = lo - r0; r < hi - r0; ++r) {
      float s = 0.0f;
      for (int b = 0; b < blocks; ++b) {
        const float* wr = tile + (static_cast<size_t>(b) * kPackRows + r) * kPackCols;
        for (int i = 0; i < kPackCols && b * kPackCols + i < in; ++i) s += wr[i] * xt[b * kPackCols + i];
      }
      Store(y + static_cast<int64_t>(t0 + t) * out + r0 + r, s, accumulate);
    }
  }
}

#endif

}  // namespace

size_t PackedSize(int out, int in) {
  return static_cast<size_t>((out + kPackRows - 1) / kPackRows) * TileFloats(in);
}

void PackWeights(const float* w, int out, int in, float* packed) {
  std::memset(packed, 0, PackedSize(out, in) * sizeof(float));
  for (int r = 0; r < out; ++r) {
    float* tile = packed + static_cast<size_t>(r / kPackRows) * TileFloats(in);
    for (int k = 0; k < in; ++k) {
      tile[(static_cast<size_t>(k / kPackCols) * kPackRows + r % kPackRows) * kPackCols + k % kPackCols] =
          w[static_cast<size_t>(r) * in + k];
    }
  }
}

void UnpackRow(const float* packed, int in, int row, float* out_row) {
  const float* tile = packed + static_cast<size_t>(row / kPackRows) * TileFloats(in);
  for (int b = 0; b < KBlocks(in); ++b) {
    const int count = in - b * kPackCols < kPackCols ? in - b * kPackCols : kPackCols;
    std::memcpy(out_row + b * kPackCols, tile + (static_cast<size_t>(b) * kPackRows + row % kPackRows) * kPackCols,
                count * sizeof(float));
  }
}

void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate) {
  // Whole tiles are computed; only rows in [row_begin, row_end) are stored.
  for (int r0 = row_begin / kPackRows * kPackRows; r0 < row_end; r0 += kPackRows) {
    const float* tile = packed + static_cast<size_t>(r0 / kPackRows) * TileFloats(in);
    const int lo = r0 > row_begin ? r0 : row_begin;
    const int hi = r0 + kPackRows < row_end ? r0 + kPackRows : row_end;
    int t = 0;
    for (; t + kTokenTile <= n; t += kTokenTile) Tile<kTokenTile>(x, tile, y, in, out, r0, lo, hi, t, accumulate);
    for (; t < n; ++t) Tile<1>(x, tile, y, in, out, r0, lo, hi, t, accumulate);
  }
}

}  // namespace llama
