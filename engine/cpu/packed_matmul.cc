#include "engine/cpu/packed_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "engine/cpu/kv_dtype.h"  // FloatToBf16: the one fp32 -> bf16 rounding (KV cache and weights)

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace llama::LLAMA_CPU_ISA_NS {
namespace {

// Tokens per register tile: 4 vectors × 6 tokens = 24 accumulators of the 32 AVX-512 registers, leaving room for
// the 4 weight vectors and a broadcast. Per k: 4 loads + 6 broadcasts feed 24 FMAs.
constexpr int kTokenTile = 6;

inline int Vectors(int out) { return (out + kPackLanes - 1) / kPackLanes; }
// Vectors in panel p of a matrix with `vectors` vectors in all.
inline int PanelVectors(int vectors, int p) { return std::min(kPanelVectors, vectors - p * kPanelVectors); }
template <typename W>
inline const W* PanelBase(const W* packed, int in, int p) {
  return packed + static_cast<size_t>(p) * kPanelRows * in;
}

// A bf16 value is the high half of an fp32: widening is exact (a shift), so a bf16 matrix runs the same fma chain
// as an fp32 matrix holding the same values.
inline float WidenScalar(float w) { return w; }
inline float WidenScalar(uint16_t w) {
  const uint32_t bits = static_cast<uint32_t>(w) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// One call of the microkernel: V consecutive vectors (possibly of two panels with the same stride) × T
// consecutive tokens.
template <typename W>
struct TileArgs {
  const float* x;             // [n, in]
  const W* w[kPanelVectors];  // vector v's values at k are w[v][k * stride, + 16)
  float* y;                       // [n, out]
  int in, out, stride;
  int row0;    // the first vector's first row
  int lo, hi;  // rows to store: [lo, hi) within [row0, row0 + 16 V)
  int t0;      // first token
  bool accumulate;
};

// Mask of the lanes of the vector at rows [r, r + 16) that fall in [lo, hi).
inline uint32_t LaneMask(int r, int lo, int hi) {
  const int a = std::max(lo - r, 0), b = std::min(hi - r, kPackLanes);
  if (b <= a) return 0;
  return ((1u << (b - a)) - 1) << a;
}

#if defined(__AVX512F__)

inline void StoreVector(float* dst, __m512 v, __mmask16 m, bool accumulate) {
  if (m == 0xFFFF) {
    _mm512_storeu_ps(dst, accumulate ? _mm512_add_ps(_mm512_loadu_ps(dst), v) : v);
  } else if (m != 0) {
    _mm512_mask_storeu_ps(dst, m, accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), v) : v);
  }
}

inline __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_epi32() as the (unused, all lanes written) merge source, which
// -Wmaybe-uninitialized reports once per inlined tile.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline __m512 Load16(const uint16_t* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
#pragma GCC diagnostic pop

template <typename W, int V, int T>
void Tile(const TileArgs<W>& a) {
  __m512 acc[V][T];
  for (int v = 0; v < V; ++v)
    for (int t = 0; t < T; ++t) acc[v][t] = _mm512_setzero_ps();
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = a.x + static_cast<int64_t>(a.t0 + t) * a.in;
  const W* w[V];
  for (int v = 0; v < V; ++v) w[v] = a.w[v];
  size_t off = 0;
  for (int k = 0; k < a.in; ++k, off += a.stride) {
    __m512 wv[V];
    for (int v = 0; v < V; ++v) wv[v] = Load16(w[v] + off);
    for (int t = 0; t < T; ++t) {
      const __m512 xb = _mm512_set1_ps(xt[t][k]);
      for (int v = 0; v < V; ++v) acc[v][t] = _mm512_fmadd_ps(wv[v], xb, acc[v][t]);
    }
  }
  for (int v = 0; v < V; ++v) {
    const int r = a.row0 + v * kPackLanes;
    const __mmask16 m = static_cast<__mmask16>(LaneMask(r, a.lo, a.hi));
    for (int t = 0; t < T; ++t) StoreVector(a.y + static_cast<int64_t>(a.t0 + t) * a.out + r, acc[v][t], m, a.accumulate);
  }
}

#elif defined(__AVX2__)

// A 16-row vector is two 8-lane halves; with 16 registers one vector × T tokens is blocked at a time.
inline void StoreHalf(float* dst, __m256 v, uint32_t m8, bool accumulate) {
  if (m8 == 0xFF) {
    _mm256_storeu_ps(dst, accumulate ? _mm256_add_ps(_mm256_loadu_ps(dst), v) : v);
  } else if (m8 != 0) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, v);
    for (int i = 0; i < 8; ++i)
      if (m8 >> i & 1) dst[i] = accumulate ? dst[i] + lanes[i] : lanes[i];
  }
}

inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 Load8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

// G row vectors (v0 .. v0 + G) x T tokens in registers (2 G T accumulators), one pass over k.
template <typename W, int G, int T>
void VectorGroup(const TileArgs<W>& a, const float* const* xt, int v0) {
  __m256 acc[T][2 * G];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2 * G; ++h) acc[t][h] = _mm256_setzero_ps();
  for (int k = 0; k < a.in; ++k) {
    __m256 w[2 * G];
    for (int g = 0; g < G; ++g) {
      const W* wk = a.w[v0 + g] + static_cast<size_t>(k) * a.stride;
      w[2 * g] = Load8(wk);
      w[2 * g + 1] = Load8(wk + 8);
    }
    for (int t = 0; t < T; ++t) {
      const __m256 xb = _mm256_broadcast_ss(xt[t] + k);
      for (int h = 0; h < 2 * G; ++h) acc[t][h] = _mm256_fmadd_ps(w[h], xb, acc[t][h]);
    }
  }
  for (int g = 0; g < G; ++g) {
    const int r = a.row0 + (v0 + g) * kPackLanes;
    const uint32_t m = LaneMask(r, a.lo, a.hi);
    for (int t = 0; t < T; ++t) {
      float* dst = a.y + static_cast<int64_t>(a.t0 + t) * a.out + r;
      StoreHalf(dst, acc[t][2 * g], m & 0xFF, a.accumulate);
      StoreHalf(dst + 8, acc[t][2 * g + 1], m >> 8, a.accumulate);
    }
  }
}

// With 16 ymm registers: a whole 4-vector panel for one token (decode streams each panel once), 2 vectors for 2
// tokens, else one vector at a time. Each element is the same fma chain over k whatever the grouping.
template <typename W, int V, int T>
void Tile(const TileArgs<W>& a) {
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = a.x + static_cast<int64_t>(a.t0 + t) * a.in;
  constexpr int G = T == 1 ? 4 : (T == 2 ? 2 : 1);
  int v = 0;
  if constexpr (G > 1) {
    for (; v + G <= V; v += G) VectorGroup<W, G, T>(a, xt, v);
  }
  for (; v < V; ++v) VectorGroup<W, 1, T>(a, xt, v);
}

#else

// Portable: the same fused chain per element (std::fma), so results equal the vector paths' bit for bit.
template <typename W, int V, int T>
void Tile(const TileArgs<W>& a) {
  for (int t = 0; t < T; ++t) {
    const float* xt = a.x + static_cast<int64_t>(a.t0 + t) * a.in;
    for (int v = 0; v < V; ++v) {
      const int r = a.row0 + v * kPackLanes;
      const uint32_t m = LaneMask(r, a.lo, a.hi);
      for (int i = 0; i < kPackLanes; ++i) {
        if (!(m >> i & 1)) continue;
        float s = 0.0f;
        for (int k = 0; k < a.in; ++k) s = std::fma(WidenScalar(a.w[v][static_cast<size_t>(k) * a.stride + i]), xt[k], s);
        float* dst = a.y + static_cast<int64_t>(a.t0 + t) * a.out + r + i;
        *dst = a.accumulate ? *dst + s : s;
      }
    }
  }
}

#endif

template <typename W>
using TileFn = void (*)(const TileArgs<W>&);

template <typename W, int V, int... T>
constexpr void FillRow(TileFn<W>* row, std::integer_sequence<int, T...>) {
  ((row[T] = &Tile<W, V, T + 1>), ...);
}

// kTiles<W>.fn[V - 1][T - 1] = Tile<W, V, T>.
template <typename W>
struct TileTable {
  TileFn<W> fn[kPanelVectors][kTokenTile];
  constexpr TileTable() : fn{} {
    FillRow<W, 1>(fn[0], std::make_integer_sequence<int, kTokenTile>());
    FillRow<W, 2>(fn[1], std::make_integer_sequence<int, kTokenTile>());
    FillRow<W, 3>(fn[2], std::make_integer_sequence<int, kTokenTile>());
    FillRow<W, 4>(fn[3], std::make_integer_sequence<int, kTokenTile>());
  }
};
template <typename W>
constexpr TileTable<W> kTiles;

// Groups of up to 4 vectors that meet [row_begin, row_end) (a group may span two panels if their strides agree:
// one token then still has 4 independent FMA chains), times tiles of up to 6 tokens.
// Each vector is a stream of 64 bytes per k that stays in L2 while the token tiles pass over it.
template <typename W>
void MatMulRowsOf(const float* x, const W* packed, float* y, int n, int in, int out, int row_begin, int row_end,
                  bool accumulate) {
  if (n <= 0 || row_begin >= row_end) return;
  const int vectors = Vectors(out);
  const int v_end = (row_end + kPackLanes - 1) / kPackLanes;
  auto stride_of = [&](int v) { return PanelVectors(vectors, v / kPanelVectors) * kPackLanes; };
  TileArgs<W> a;
  a.x = x;
  a.y = y;
  a.in = in;
  a.out = out;
  a.lo = row_begin;
  a.hi = std::min(row_end, out);
  a.accumulate = accumulate;
  for (int v = row_begin / kPackLanes; v < v_end;) {
    a.stride = stride_of(v);
    a.row0 = v * kPackLanes;
    int count = 0;
    for (; count < kPanelVectors && v + count < v_end && stride_of(v + count) == a.stride; ++count) {
      const int u = v + count;
      a.w[count] = PanelBase(packed, in, u / kPanelVectors) + (u % kPanelVectors) * kPackLanes;
    }
    // ceil(n / 6) token tiles of near-equal size (7 tokens as 4 + 3, not 6 + 1: a 1-token tile does 4 FMAs per
    // 5 loads). Which tile a token lands in never changes its result.
    const TileFn<W>* fns = kTiles<W>.fn[count - 1];
    const int tiles = (n + kTokenTile - 1) / kTokenTile;
    for (int i = 0, t = 0; i < tiles; ++i) {
      const int size = n / tiles + (i < n % tiles ? 1 : 0);
      a.t0 = t;
      fns[size - 1](a);
      t += size;
    }
    v += count;
  }
}

// Panel layout of num_rows (<= 64) rows into dst (the panel's first element): stride ceil(num_rows / 16) * 16.
template <typename W, typename Convert>
void PackPanelOf(const float* rows, int num_rows, int in, W* dst, Convert convert) {
  const int stride = (num_rows + kPackLanes - 1) / kPackLanes * kPackLanes;
  std::memset(dst, 0, static_cast<size_t>(stride) * in * sizeof(W));
  for (int r = 0; r < num_rows; ++r) {
    const float* src = rows + static_cast<size_t>(r) * in;
    for (int k = 0; k < in; ++k) dst[static_cast<size_t>(k) * stride + r] = convert(src[k]);
  }
}

template <typename W>
void UnpackRowOf(const W* packed, int out, int in, int row, float* out_row) {
  const int p = row / kPanelRows;
  const int stride = PanelVectors(Vectors(out), p) * kPackLanes;
  const W* src = PanelBase(packed, in, p) + row % kPanelRows;
  for (int k = 0; k < in; ++k) out_row[k] = WidenScalar(src[static_cast<size_t>(k) * stride]);
}

}  // namespace

size_t PackedSize(int out, int in) { return static_cast<size_t>(Vectors(out)) * kPackLanes * in; }

void PackWeights(const float* w, int out, int in, float* packed) {
  std::memset(packed, 0, PackedSize(out, in) * sizeof(float));
  const int vectors = Vectors(out);
  for (int r = 0; r < out; ++r) {
    const int p = r / kPanelRows;
    const int stride = PanelVectors(vectors, p) * kPackLanes;
    float* dst = packed + static_cast<size_t>(p) * kPanelRows * in + r % kPanelRows;
    const float* src = w + static_cast<size_t>(r) * in;
    for (int k = 0; k < in; ++k) dst[static_cast<size_t>(k) * stride] = src[k];
  }
}

void UnpackRow(const float* packed, int out, int in, int row, float* out_row) {
  UnpackRowOf(packed, out, in, row, out_row);
}

size_t PanelOffset(int in, int panel) { return static_cast<size_t>(panel) * kPanelRows * in; }

void PackPanel(const float* rows, int num_rows, int in, float* dst) {
  PackPanelOf(rows, num_rows, in, dst, [](float v) { return v; });
}

void PackPanelBf16(const float* rows, int num_rows, int in, uint16_t* dst) {
  PackPanelOf(rows, num_rows, in, dst, [](float v) { return FloatToBf16(v); });
}

void UnpackRowBf16(const uint16_t* packed, int out, int in, int row, float* out_row) {
  UnpackRowOf(packed, out, in, row, out_row);
}

void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate) {
  MatMulRowsOf(x, packed, y, n, in, out, row_begin, row_end, accumulate);
}

void PackedMatMulRowsBf16(const float* x, const uint16_t* packed, float* y, int n, int in, int out, int row_begin,
                          int row_end, bool accumulate) {
  MatMulRowsOf(x, packed, y, n, in, out, row_begin, row_end, accumulate);
}

}  // namespace llama::LLAMA_CPU_ISA_NS
