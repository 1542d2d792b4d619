#include "engine/cpu/packed_q8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace llama::LLAMA_CPU_ISA_NS {
namespace {

constexpr int kGroups = kQ8Block / 4;         // slabs of int8 values per block (4 k each)
constexpr int kVectorBytes = kPackLanes * 4;  // one 16-row vector's bytes in a slab

inline int Vectors(int out) { return (out + kPackLanes - 1) / kPackLanes; }
// Vectors in panel p of a matrix with `vectors` vectors in all.
inline int PanelVectors(int vectors, int p) { return std::min(kPanelVectors, vectors - p * kPanelVectors); }
inline size_t SlabBytes(int panel_vectors) { return static_cast<size_t>(panel_vectors) * kVectorBytes; }
inline size_t ChunkBytes(int panel_vectors) { return (kGroups + 1) * SlabBytes(panel_vectors); }

// The Q8_0 rule on 32 values: returns d and writes q[0, 32).
inline float QuantizeBlock(const float* v, int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(v[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < kQ8Block; ++i) {
    q[i] = static_cast<int8_t>(std::clamp(std::round(v[i] * id), -127.0f, 127.0f));
  }
  return d;
}

// One call of the microkernel: V consecutive vectors (possibly of two panels with the same V) × T consecutive
// tokens.
struct TileArgs {
  const uint8_t* xq;  // QuantizeActivations of [n, in]
  size_t x_row;       // bytes per token in xq
  // Vector v's scales of block b are at w[v] + b * chunk, its values of slab 1 + g at w[v] + b * chunk +
  // (1 + g) * slab.
  const uint8_t* w[kPanelVectors];
  size_t slab, chunk;
  float* y;  // [n, out]
  int in, out, blocks;
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

inline const uint8_t* TokenRow(const TileArgs& a, int t) { return a.xq + static_cast<size_t>(a.t0 + t) * a.x_row; }
inline float* OutRow(const TileArgs& a, int t, int r) { return a.y + static_cast<int64_t>(a.t0 + t) * a.out + r; }

// Portable: per element, the exact block sums and the fma chain of the header, one lane at a time.
template <int V, int T>
void PortableTile(const TileArgs& a) {
  for (int t = 0; t < T; ++t) {
    const int8_t* xt = reinterpret_cast<const int8_t*>(TokenRow(a, t));
    const uint8_t* dx_bytes = TokenRow(a, t) + a.in;
    for (int v = 0; v < V; ++v) {
      const int r = a.row0 + v * kPackLanes;
      const uint32_t m = LaneMask(r, a.lo, a.hi);
      if (m == 0) continue;
      float acc[kPackLanes] = {};
      for (int b = 0; b < a.blocks; ++b) {
        const uint8_t* c = a.w[v] + static_cast<size_t>(b) * a.chunk;
        float dw[kPackLanes], dx;
        std::memcpy(dw, c, sizeof(dw));
        std::memcpy(&dx, dx_bytes + 4 * b, sizeof(dx));
        int32_t isum[kPackLanes] = {};
        for (int g = 0; g < kGroups; ++g) {
          const int8_t* wq = reinterpret_cast<const int8_t*>(c + (1 + g) * a.slab);
          const int8_t* xg = xt + kQ8Block * b + 4 * g;
          for (int i = 0; i < kPackLanes; ++i) {
            for (int j = 0; j < 4; ++j) isum[i] += int32_t{wq[4 * i + j]} * int32_t{xg[j]};
          }
        }
        for (int i = 0; i < kPackLanes; ++i) acc[i] = std::fma(dw[i] * dx, static_cast<float>(isum[i]), acc[i]);
      }
      float* dst = OutRow(a, t, r);
      for (int i = 0; i < kPackLanes; ++i) {
        if (m >> i & 1) dst[i] = a.accumulate ? dst[i] + acc[i] : acc[i];
      }
    }
  }
}

#if defined(__AVX2__)

inline __m256i Broadcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

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

// AVX2 (no VNNI): H 8-row halves (half h of the tile = rows [row0 + 8h, + 8), the 32-byte half h % 2 of vector
// h / 2) × T tokens from t_first. Per 4-k slab: x[t, k .. k + 3] broadcast to every lane; the sign trick makes
// maddubs (u8 × s8) exact: |x| as the unsigned operand, w with x's sign (vpsignb) as the signed one, so each pair
// sum is <= 2 · 127² < 2^15 (no int16 saturation); madd with ones adds the pairs into the int32 lanes.
// Registers: 2 H T accumulators (int32 block sums, fp32 chains) of the 16 ymm.
template <int H, int T>
void HalfGroup(const TileArgs& a, int t_first, int h0) {
  const uint8_t* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = TokenRow(a, t_first + t);
  const uint8_t* w[H];
  for (int h = 0; h < H; ++h) w[h] = a.w[(h0 + h) / 2] + 32 * ((h0 + h) % 2);
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 facc[T][H];
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) facc[t][h] = _mm256_setzero_ps();
  for (int b = 0; b < a.blocks; ++b) {
    const size_t cb = static_cast<size_t>(b) * a.chunk;
    __m256i iacc[T][H];
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h) iacc[t][h] = _mm256_setzero_si256();
    for (int g = 0; g < kGroups; ++g) {
      __m256i xb[T], xa[T];
      for (int t = 0; t < T; ++t) {
        xb[t] = Broadcast4(xt[t] + kQ8Block * b + 4 * g);
        xa[t] = _mm256_abs_epi8(xb[t]);
      }
      const size_t off = cb + (1 + g) * a.slab;
      for (int h = 0; h < H; ++h) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[h] + off));
        for (int t = 0; t < T; ++t) {
          const __m256i p = _mm256_maddubs_epi16(xa[t], _mm256_sign_epi8(wv, xb[t]));
          iacc[t][h] = _mm256_add_epi32(iacc[t][h], _mm256_madd_epi16(p, ones));
        }
      }
    }
    __m256 dx[T];
    for (int t = 0; t < T; ++t) dx[t] = _mm256_broadcast_ss(reinterpret_cast<const float*>(xt[t] + a.in) + b);
    for (int h = 0; h < H; ++h) {
      const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(w[h] + cb));
      for (int t = 0; t < T; ++t) {
        facc[t][h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[t]), _mm256_cvtepi32_ps(iacc[t][h]), facc[t][h]);
      }
    }
  }
  for (int h = 0; h < H; ++h) {
    const int v = (h0 + h) / 2, half = (h0 + h) % 2;
    const int r = a.row0 + v * kPackLanes;
    const uint32_t m8 = LaneMask(r, a.lo, a.hi) >> (8 * half) & 0xFF;
    for (int t = 0; t < T; ++t) StoreHalf(OutRow(a, t_first + t, r + 8 * half), facc[t][h], m8, a.accumulate);
  }
}

// Token pairs over one vector (2 halves) at a time, a last single token over 2 vectors (4 halves) at a time.
template <int V, int T>
struct Avx2 {
  static void Run(const TileArgs& a) {
    int t = 0;
    for (; t + 2 <= T; t += 2)
      for (int h = 0; h < 2 * V; h += 2) HalfGroup<2, 2>(a, t, h);
    if (t < T) {
      int h = 0;
      for (; h + 4 <= 2 * V; h += 4) HalfGroup<4, 1>(a, t, h);
      if (h < 2 * V) HalfGroup<2, 1>(a, t, h);
    }
  }
};

#endif  // __AVX2__

using TileFn = void (*)(const TileArgs&);

// Tokens per tile.
constexpr int kTokenTile = 4;

template <template <int, int> class K, int V, int... T>
constexpr void FillRow(TileFn* row, std::integer_sequence<int, T...>) {
  ((row[T] = &K<V, T + 1>::Run), ...);
}

// fn[V - 1][T - 1] = K<V, T>::Run.
template <template <int, int> class K>
struct TileTable {
  TileFn fn[kPanelVectors][kTokenTile];
  constexpr TileTable() : fn{} {
    FillRow<K, 1>(fn[0], std::make_integer_sequence<int, kTokenTile>());
    FillRow<K, 2>(fn[1], std::make_integer_sequence<int, kTokenTile>());
    FillRow<K, 3>(fn[2], std::make_integer_sequence<int, kTokenTile>());
    FillRow<K, 4>(fn[3], std::make_integer_sequence<int, kTokenTile>());
  }
};

template <int V, int T>
struct Portable {
  static void Run(const TileArgs& a) { PortableTile<V, T>(a); }
};
constexpr TileTable<Portable> kPortableTiles;
#if defined(__AVX2__) && !defined(__AVX512F__)
constexpr TileTable<Avx2> kAvx2Tiles;
#endif

// Groups of up to 4 vectors that meet [row_begin, row_end) (a group may span two panels when their V agree), times
// ceil(n / kTokenTile) token tiles of near-equal size. Which group or tile an element lands in never changes it.
template <template <int, int> class K>
void MatMulRowsWith(const TileTable<K>& tiles, const uint8_t* xq, const uint8_t* packed, float* y, int n, int in,
                    int out, int row_begin, int row_end, bool accumulate) {
  if (n <= 0 || row_begin >= row_end) return;
  const int vectors = Vectors(out);
  const int v_end = std::min((row_end + kPackLanes - 1) / kPackLanes, vectors);
  const int blocks = in / kQ8Block;
  const size_t full_panel = blocks * ChunkBytes(kPanelVectors);
  auto panel_vectors_of = [&](int v) { return PanelVectors(vectors, v / kPanelVectors); };
  TileArgs a;
  a.xq = xq;
  a.x_row = static_cast<size_t>(in) + sizeof(float) * blocks;
  a.y = y;
  a.in = in;
  a.out = out;
  a.blocks = blocks;
  a.lo = row_begin;
  a.hi = std::min(row_end, out);
  a.accumulate = accumulate;
  for (int v = row_begin / kPackLanes; v < v_end;) {
    const int pv = panel_vectors_of(v);
    a.slab = SlabBytes(pv);
    a.chunk = ChunkBytes(pv);
    a.row0 = v * kPackLanes;
    int count = 0;
    for (; count < kPanelVectors && v + count < v_end && panel_vectors_of(v + count) == pv; ++count) {
      const int u = v + count;
      a.w[count] = packed + (u / kPanelVectors) * full_panel + (u % kPanelVectors) * kVectorBytes;
    }
    const TileFn* fns = tiles.fn[count - 1];
    const int num_tiles = (n + kTokenTile - 1) / kTokenTile;
    for (int i = 0, t = 0; i < num_tiles; ++i) {
      const int size = n / num_tiles + (i < n % num_tiles ? 1 : 0);
      a.t0 = t;
      fns[size - 1](a);
      t += size;
    }
    v += count;
  }
}

}  // namespace

size_t PackedQ8Bytes(int out, int in) {
  return static_cast<size_t>(in / kQ8Block) * Vectors(out) * (kGroups + 1) * kVectorBytes;
}

size_t PackedQ8PanelOffset(int out, int in, int panel) {
  (void)out;
  return static_cast<size_t>(panel) * (in / kQ8Block) * ChunkBytes(kPanelVectors);
}

void PackPanelQ8(const float* rows, int num_rows, int in, uint8_t* dst) {
  const int pv = (num_rows + kPackLanes - 1) / kPackLanes;
  const int blocks = in / kQ8Block;
  const size_t slab = SlabBytes(pv), chunk = ChunkBytes(pv);
  std::memset(dst, 0, blocks * chunk);
  int8_t q[kQ8Block];
  for (int r = 0; r < num_rows; ++r) {
    for (int b = 0; b < blocks; ++b) {
      uint8_t* c = dst + b * chunk;
      const float d = QuantizeBlock(rows + static_cast<size_t>(r) * in + kQ8Block * b, q);
      std::memcpy(c + sizeof(float) * r, &d, sizeof(d));
      for (int g = 0; g < kGroups; ++g) std::memcpy(c + (1 + g) * slab + 4 * r, q + 4 * g, 4);
    }
  }
}

void UnpackRowQ8(const uint8_t* packed, int out, int in, int row, float* out_row) {
  const int p = row / kPanelRows, i = row % kPanelRows;
  const int pv = PanelVectors(Vectors(out), p);
  const size_t slab = SlabBytes(pv), chunk = ChunkBytes(pv);
  const uint8_t* base = packed + PackedQ8PanelOffset(out, in, p);
  for (int b = 0; b < in / kQ8Block; ++b) {
    const uint8_t* c = base + b * chunk;
    float d;
    std::memcpy(&d, c + sizeof(float) * i, sizeof(d));
    for (int k = 0; k < kQ8Block; ++k) {
      const int8_t q = static_cast<int8_t>(c[(1 + k / 4) * slab + 4 * i + k % 4]);
      out_row[kQ8Block * b + k] = d * static_cast<float>(q);
    }
  }
}

size_t QuantizedActivationBytes(int n, int in) {
  return static_cast<size_t>(n) * (static_cast<size_t>(in) + sizeof(float) * (in / kQ8Block));
}

void QuantizeActivations(const float* x, int n, int in, uint8_t* xq) {
  const int blocks = in / kQ8Block;
  const size_t row = static_cast<size_t>(in) + sizeof(float) * blocks;
  for (int t = 0; t < n; ++t) {
    uint8_t* dst = xq + t * row;
    for (int b = 0; b < blocks; ++b) {
      const float d = QuantizeBlock(x + static_cast<size_t>(t) * in + kQ8Block * b,
                                    reinterpret_cast<int8_t*>(dst + kQ8Block * b));
      std::memcpy(dst + in + sizeof(float) * b, &d, sizeof(d));
    }
  }
}

void PackedQ8MatMulRows(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out, int row_begin,
                        int row_end, bool accumulate) {
#if defined(__AVX2__) && !defined(__AVX512F__)
  MatMulRowsWith(kAvx2Tiles, xq, packed, y, n, in, out, row_begin, row_end, accumulate);
#else
  MatMulRowsWith(kPortableTiles, xq, packed, y, n, in, out, row_begin, row_end, accumulate);
#endif
}

}  // namespace llama::LLAMA_CPU_ISA_NS
