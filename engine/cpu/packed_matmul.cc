#include "engine/cpu/packed_matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

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
inline const float* PanelBase(const float* packed, int in, int p) {
  return packed + static_cast<size_t>(p) * kPanelRows * in;
}

// One call of the microkernel: V consecutive vectors (possibly of two panels with the same stride) × T
// consecutive tokens.
struct TileArgs {
  const float* x;                 // [n, in]
  const float* w[kPanelVectors];  // vector v's values at k are w[v][k * stride, + 16)
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

template <int V, int T>
void Tile(const TileArgs& a) {
  __m512 acc[V][T];
  for (int v = 0; v < V; ++v)
    for (int t = 0; t < T; ++t) acc[v][t] = _mm512_setzero_ps();
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = a.x + static_cast<int64_t>(a.t0 + t) * a.in;
  const float* w[V];
  for (int v = 0; v < V; ++v) w[v] = a.w[v];
  size_t off = 0;
  for (int k = 0; k < a.in; ++k, off += a.stride) {
    __m512 wv[V];
    for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_ps(w[v] + off);
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

// G row vectors (v0 .. v0 + G) x T tokens in registers (2 G T accumulators), one pass over k.
template <int G, int T>
void VectorGroup(const TileArgs& a, const float* const* xt, int v0) {
  __m256 acc[T][2 * G];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < 2 * G; ++h) acc[t][h] = _mm256_setzero_ps();
  for (int k = 0; k < a.in; ++k) {
    __m256 w[2 * G];
    for (int g = 0; g < G; ++g) {
      const float* wk = a.w[v0 + g] + static_cast<size_t>(k) * a.stride;
      w[2 * g] = _mm256_loadu_ps(wk);
      w[2 * g + 1] = _mm256_loadu_ps(wk + 8);
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
template <int V, int T>
void Tile(const TileArgs& a) {
  const float* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = a.x + static_cast<int64_t>(a.t0 + t) * a.in;
  constexpr int G = T == 1 ? 4 : (T == 2 ? 2 : 1);
  int v = 0;
  if constexpr (G > 1) {
    for (; v + G <= V; v += G) VectorGroup<G, T>(a, xt, v);
  }
  for (; v < V; ++v) VectorGroup<1, T>(a, xt, v);
}

#else

// Portable: the same fused chain per element (std::fma), so results equal the vector paths' bit for bit.
template <int V, int T>
void Tile(const TileArgs& a) {
  for (int t = 0; t < T; ++t) {
    const float* xt = a.x + static_cast<int64_t>(a.t0 + t) * a.in;
    for (int v = 0; v < V; ++v) {
      const int r = a.row0 + v * kPackLanes;
      const uint32_t m = LaneMask(r, a.lo, a.hi);
      for (int i = 0; i < kPackLanes; ++i) {
        if (!(m >> i & 1)) continue;
        float s = 0.0f;
        for (int k = 0; k < a.in; ++k) s = std::fma(a.w[v][static_cast<size_t>(k) * a.stride + i], xt[k], s);
        float* dst = a.y + static_cast<int64_t>(a.t0 + t) * a.out + r + i;
        *dst = a.accumulate ? *dst + s : s;
      }
    }
  }
}

#endif

using TileFn = void (*)(const TileArgs&);

template <int V, int... T>
constexpr void FillRow(TileFn* row, std::integer_sequence<int, T...>) {
  ((row[T] = &Tile<V, T + 1>), ...);
}

// kTiles[V - 1][T - 1] = Tile<V, T>.
struct TileTable {
  TileFn fn[kPanelVectors][kTokenTile];
  constexpr TileTable() : fn{} {
    FillRow<1>(fn[0], std::make_integer_sequence<int, kTokenTile>());
    FillRow<2>(fn[1], std::make_integer_sequence<int, kTokenTile>());
    FillRow<3>(fn[2], std::make_integer_sequence<int, kTokenTile>());
    FillRow<4>(fn[3], std::make_integer_sequence<int, kTokenTile>());
  }
};
constexpr TileTable kTiles;

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
  const int p = row / kPanelRows;
  const int stride = PanelVectors(Vectors(out), p) * kPackLanes;
  const float* src = PanelBase(packed, in, p) + row % kPanelRows;
  for (int k = 0; k < in; ++k) out_row[k] = src[static_cast<size_t>(k) * stride];
}

// Groups of up to 4 vectors that meet [row_begin, row_end) (a group may span two panels if their strides agree:
// one token then still has 4 independent FMA chains), times tiles of up to 6 tokens.
// Each vector is a stream of 64 bytes per k that stays in L2 while the token tiles pass over it.
void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate) {
  if (n <= 0 || row_begin >= row_end) return;
  const int vectors = Vectors(out);
  const int v_end = (row_end + kPackLanes - 1) / kPackLanes;
  auto stride_of = [&](int v) { return PanelVectors(vectors, v / kPanelVectors) * kPackLanes; };
  TileArgs a;
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
    const TileFn* fns = kTiles.fn[count - 1];
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

}  // namespace llama::LLAMA_CPU_ISA_NS
