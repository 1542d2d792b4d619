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

// roundf (halves away from zero) for |f| < 2^31 without the libm call (baseline x86-64 has no roundps): the
// truncation and f - trunc(f) are exact, so this is the same function, and it vectorizes.
inline int32_t RoundHalfAway(float f) {
  int32_t i = static_cast<int32_t>(f);
  const float frac = f - static_cast<float>(i);
  i += (frac >= 0.5f) - (frac <= -0.5f);
  return i;
}

// The Q8_0 rule on 32 values: returns d and writes q[0, 32).
inline float QuantizeBlock(const float* v, int8_t* q) {
  float amax = 0.0f;
  for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(v[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < kQ8Block; ++i) q[i] = static_cast<int8_t>(std::clamp(RoundHalfAway(v[i] * id), -127, 127));
  return d;
}

#if defined(__AVX2__)
// QuantizeBlock in 8-lane vectors: the same exact operations (max of |v|, the division, the product, truncation
// and the half step), so the same bytes.
inline float QuantizeBlockAvx2(const float* v, int8_t* q) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 x[4];
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    x[i] = _mm256_loadu_ps(v + 8 * i);
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, x[i]));
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  const float d = _mm_cvtss_f32(h) / 127.0f;
  const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
  const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f), minus_half = _mm256_set1_ps(-0.5f);
  __m256i qi[4];
  for (int i = 0; i < 4; ++i) {
    const __m256 y = _mm256_mul_ps(x[i], id);
    __m256 t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_sub_ps(y, t);
    t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), one));
    t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, minus_half, _CMP_LE_OQ), one));
    qi[i] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(t), _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
  }
  // packs work within 128-bit lanes: the bytes come out as 4-value groups in the order 0 2 4 6 1 3 5 7.
  const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return d;
}
#endif

// The build's fastest QuantizeBlock (all give the same bytes).
inline float QuantizeBlockFast(const float* v, int8_t* q) {
#if defined(__AVX2__)
  return QuantizeBlockAvx2(v, q);
#else
  return QuantizeBlock(v, q);
#endif
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
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[h / 2] + off + 32 * (h % 2)));
        for (int t = 0; t < T; ++t) {
          const __m256i p = _mm256_maddubs_epi16(xa[t], _mm256_sign_epi8(wv, xb[t]));
          iacc[t][h] = _mm256_add_epi32(iacc[t][h], _mm256_madd_epi16(p, ones));
        }
      }
    }
    __m256 dx[T];
    for (int t = 0; t < T; ++t) dx[t] = _mm256_broadcast_ss(reinterpret_cast<const float*>(xt[t] + a.in) + b);
    for (int h = 0; h < H; ++h) {
      const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(w[h / 2] + cb + 32 * (h % 2)));
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

// One token over all the tile's H = 2 V halves in one pass over the blocks, so the weights stream through in
// address order (a chunk is the V vectors' slabs back to back): at n = 1 the kernel is bound by memory, and
// HalfGroup<4, 1>'s two passes over a panel, each reading every other 128 bytes, left the hardware prefetcher
// fetching lines the pass skipped. The H int32 block sums stay in registers (H <= 8, + x, |x|, ones and a
// temporary of the 16 ymm); the fp32 chains live in `acc` (L1), one load/fma/store per half and block, which
// is cheap next to the block's 8 H slab steps and keeps the integer loop free of spills. The empty asm after
// each add pins the per-half add chain in program order: without it GCC reassociates the 8 adds of a block into
// a tree and spills the products to the stack.
template <int H>
void HalfRow(const TileArgs& a, int t) {
  const uint8_t* xt = TokenRow(a, t);
  const float* dxs = reinterpret_cast<const float*>(xt + a.in);
  constexpr int V = H / 2;
  const uint8_t* w[V];  // half h is the 32-byte half h % 2 of vector h / 2 (the tile may span two panels)
  for (int v = 0; v < V; ++v) w[v] = a.w[v];
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) float acc[H][8] = {};
  for (int b = 0; b < a.blocks; ++b) {
    const size_t cb = static_cast<size_t>(b) * a.chunk;
    __m256i iacc[H];
#pragma GCC unroll 8
    for (int h = 0; h < H; ++h) iacc[h] = _mm256_setzero_si256();
    // Unrolled so that iacc is registers, not an array on the stack.
#pragma GCC unroll 8
    for (int g = 0; g < kGroups; ++g) {
      const __m256i xb = Broadcast4(xt + kQ8Block * b + 4 * g);
      const __m256i xa = _mm256_abs_epi8(xb);
      const size_t off = cb + (1 + g) * a.slab;
#pragma GCC unroll 8
      for (int h = 0; h < H; ++h) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[h / 2] + off + 32 * (h % 2)));
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(xa, _mm256_sign_epi8(wv, xb)), ones);
        iacc[h] = _mm256_add_epi32(iacc[h], p);
        asm("" : "+x"(iacc[h]));
      }
    }
    const __m256 dx = _mm256_broadcast_ss(dxs + b);
    for (int h = 0; h < H; ++h) {
      const __m256 dw = _mm256_loadu_ps(reinterpret_cast<const float*>(w[h / 2] + cb + 32 * (h % 2)));
      _mm256_store_ps(acc[h], _mm256_fmadd_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(iacc[h]),
                                              _mm256_load_ps(acc[h])));
    }
  }
  for (int h = 0; h < H; ++h) {
    const int r = a.row0 + 8 * h;
    const uint32_t m8 = LaneMask(a.row0 + (h / 2) * kPackLanes, a.lo, a.hi) >> (8 * (h % 2)) & 0xFF;
    StoreHalf(OutRow(a, t, r), _mm256_load_ps(acc[h]), m8, a.accumulate);
  }
}

// Token pairs over one vector (2 halves) at a time, a last single token over all the vectors in one pass.
template <int V, int T>
struct Avx2 {
  static void Run(const TileArgs& a) {
    int t = 0;
    for (; t + 2 <= T; t += 2)
      for (int h = 0; h < 2 * V; h += 2) HalfGroup<2, 2>(a, t, h);
    if (t < T) HalfRow<2 * V>(a, t);
  }
};

#endif  // __AVX2__

#if defined(__AVX512F__)

// GCC 12 reports the _mm512_undefined_ps() inside _mm512_cvtepi32_ps as maybe uninitialized (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

inline __m512i Broadcast4x16(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm512_set1_epi32(v);
}

inline void StoreVector(float* dst, __m512 v, __mmask16 m, bool accumulate) {
  if (m == 0xFFFF) {
    _mm512_storeu_ps(dst, accumulate ? _mm512_add_ps(_mm512_loadu_ps(dst), v) : v);
  } else if (m != 0) {
    _mm512_mask_storeu_ps(dst, m, accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), v) : v);
  }
}

// AVX-512: V vectors × T tokens from t_first (T <= 2: 2 V T accumulators, + V column sums with VNNI, of the 32
// zmm). Per 4-k slab, x[t, k .. k + 3] is broadcast to every lane and multiplied by each vector's 16 rows × 4 k.
//   VNNI (the isa_avx512vnni build, -mavx512vnni): vpdpbusd takes u8 × s8, so x goes in as x + 128 (x ^ 0x80)
//     and the weights as they are: one instruction per vector and token adds isum + 128 · Σw into the lanes;
//     128 · Σw comes from one more vpdpbusd per vector (0x80 × w), shared by the tokens, and is subtracted at the
//     end of the block. Everything is exact int32.
//   AVX-512BW: the AVX2 sign trick (w negated where x < 0 with a mask, |x| unsigned), vpmaddubsw + vpmaddwd.
template <int V, int T>
void VectorGroup(const TileArgs& a, int v_first, int t_first) {
  const uint8_t* w[V];
  for (int v = 0; v < V; ++v) w[v] = a.w[v_first + v];
  const uint8_t* xt[T];
  for (int t = 0; t < T; ++t) xt[t] = TokenRow(a, t_first + t);
#if defined(__AVX512VNNI__)
  const __m512i c80 = _mm512_set1_epi8(static_cast<char>(0x80));
#else
  const __m512i ones = _mm512_set1_epi16(1);
#endif
  __m512 facc[V][T];
  for (int v = 0; v < V; ++v)
    for (int t = 0; t < T; ++t) facc[v][t] = _mm512_setzero_ps();
  for (int b = 0; b < a.blocks; ++b) {
    const size_t cb = static_cast<size_t>(b) * a.chunk;
    __m512i iacc[V][T];
    for (int v = 0; v < V; ++v)
      for (int t = 0; t < T; ++t) iacc[v][t] = _mm512_setzero_si512();
#if defined(__AVX512VNNI__)
    __m512i wsum[V];
    for (int v = 0; v < V; ++v) wsum[v] = _mm512_setzero_si512();
#endif
    for (int g = 0; g < kGroups; ++g) {
      const size_t off = cb + (1 + g) * a.slab;
#if defined(__AVX512VNNI__)
      __m512i xu[T];
      for (int t = 0; t < T; ++t) xu[t] = _mm512_xor_si512(Broadcast4x16(xt[t] + kQ8Block * b + 4 * g), c80);
      for (int v = 0; v < V; ++v) {
        const __m512i wv = _mm512_loadu_si512(w[v] + off);
        wsum[v] = _mm512_dpbusd_epi32(wsum[v], c80, wv);
        for (int t = 0; t < T; ++t) iacc[v][t] = _mm512_dpbusd_epi32(iacc[v][t], xu[t], wv);
      }
#else
      __m512i xa[T];
      __mmask64 neg[T];
      for (int t = 0; t < T; ++t) {
        const __m512i xb = Broadcast4x16(xt[t] + kQ8Block * b + 4 * g);
        neg[t] = _mm512_movepi8_mask(xb);
        xa[t] = _mm512_abs_epi8(xb);
      }
      for (int v = 0; v < V; ++v) {
        const __m512i wv = _mm512_loadu_si512(w[v] + off);
        for (int t = 0; t < T; ++t) {
          const __m512i ws = _mm512_mask_sub_epi8(wv, neg[t], _mm512_setzero_si512(), wv);
          const __m512i p = _mm512_maddubs_epi16(xa[t], ws);
          iacc[v][t] = _mm512_add_epi32(iacc[v][t], _mm512_madd_epi16(p, ones));
        }
      }
#endif
    }
    __m512 dx[T];
    for (int t = 0; t < T; ++t) dx[t] = _mm512_set1_ps(reinterpret_cast<const float*>(xt[t] + a.in)[b]);
    for (int v = 0; v < V; ++v) {
      const __m512 dw = _mm512_loadu_ps(w[v] + cb);
      for (int t = 0; t < T; ++t) {
#if defined(__AVX512VNNI__)
        const __m512i isum = _mm512_sub_epi32(iacc[v][t], wsum[v]);
#else
        const __m512i isum = iacc[v][t];
#endif
        facc[v][t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx[t]), _mm512_cvtepi32_ps(isum), facc[v][t]);
      }
    }
  }
  for (int v = 0; v < V; ++v) {
    const int r = a.row0 + (v_first + v) * kPackLanes;
    const __mmask16 m = static_cast<__mmask16>(LaneMask(r, a.lo, a.hi));
    for (int t = 0; t < T; ++t) StoreVector(OutRow(a, t_first + t, r), facc[v][t], m, a.accumulate);
  }
}

// VNNI: up to 2 tokens over all the tile's vectors, 3 or 4 tokens over pairs of vectors (<= 24 registers live
// either way). AVX-512BW (3 more registers per token): token pairs over all the vectors, then a last one.
template <int V, int T>
struct Avx512 {
  static void Run(const TileArgs& a) {
#if defined(__AVX512VNNI__)
    if constexpr (T <= 2 || V == 1) {
      VectorGroup<V, T>(a, 0, 0);
    } else {
      int v = 0;
      for (; v + 2 <= V; v += 2) VectorGroup<2, T>(a, v, 0);
      if (v < V) VectorGroup<1, T>(a, v, 0);
    }
#else
    int t = 0;
    for (; t + 2 <= T; t += 2) VectorGroup<V, 2>(a, 0, t);
    if (t < T) VectorGroup<V, 1>(a, 0, t);
#endif
  }
};

#pragma GCC diagnostic pop

#endif  // __AVX512F__

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
#if defined(__AVX512F__)
constexpr TileTable<Avx512> kAvx512Tiles;
#elif defined(__AVX2__)
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
      const float d = QuantizeBlockFast(rows + static_cast<size_t>(r) * in + kQ8Block * b, q);
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
      const float d = QuantizeBlockFast(x + static_cast<size_t>(t) * in + kQ8Block * b,
                                        reinterpret_cast<int8_t*>(dst + kQ8Block * b));
      std::memcpy(dst + in + sizeof(float) * b, &d, sizeof(d));
    }
  }
}

void PackedQ8MatMulRows(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out, int row_begin,
                        int row_end, bool accumulate) {
#if defined(__AVX512F__)
  MatMulRowsWith(kAvx512Tiles, xq, packed, y, n, in, out, row_begin, row_end, accumulate);
#elif defined(__AVX2__)
  MatMulRowsWith(kAvx2Tiles, xq, packed, y, n, in, out, row_begin, row_end, accumulate);
#else
  MatMulRowsWith(kPortableTiles, xq, packed, y, n, in, out, row_begin, row_end, accumulate);
#endif
}

}  // namespace llama::LLAMA_CPU_ISA_NS
