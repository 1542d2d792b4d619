#include "engine/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__)
#if defined(__AVX512F__)
// GCC 12 flags the intrinsics' internal _mm512_undefined_ps() inside _mm512_reduce_add_ps (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

namespace llama::LLAMA_CPU_ISA_NS {
namespace {

// The storage element of a cache of dtype D.
template <KvDtype D>
using Elem = std::conditional_t<D == KvDtype::kF32, float, uint16_t>;

inline float WidenBf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// One element's exact widening (the scalar tail of every path).
template <KvDtype D>
inline float Widen(Elem<D> e) {
  if constexpr (D == KvDtype::kF32) {
    return e;
  } else if constexpr (D == KvDtype::kF16) {
    return F16ToFloat(e);
  } else {
    return WidenBf16(e);
  }
}

template <KvDtype D>
inline Elem<D> Narrow(float x) {
  if constexpr (D == KvDtype::kF32) {
    return x;
  } else if constexpr (D == KvDtype::kF16) {
    return FloatToF16(x);
  } else {
    return FloatToBf16(x);
  }
}

#if defined(__AVX512F__)
// 16 elements widened to fp32 lanes (f16: vcvtph2ps; bf16: 16-bit lanes zero-extended to 32 and shifted up).
template <KvDtype D>
inline __m512 Load16(const Elem<D>* p) {
  if constexpr (D == KvDtype::kF32) {
    return _mm512_loadu_ps(p);
  } else if constexpr (D == KvDtype::kF16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
}

// The lanes of m (others 0.0f, as a zero half widens to).
template <KvDtype D>
inline __m512 Load16(__mmask16 m, const Elem<D>* p) {
  if constexpr (D == KvDtype::kF32) {
    return _mm512_maskz_loadu_ps(m, p);
  } else if constexpr (D == KvDtype::kF16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  } else {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
  }
}

// 16 floats rounded to nearest even into 16 halves (bf16: add 0x7FFF plus the kept lsb, keep the top 16 bits;
// NaN lanes keep their top bits with the quiet bit set), the bits FloatToF16 / FloatToBf16 give.
template <KvDtype D>
inline __m256i Narrow16(__m512 v) {
  if constexpr (D == KvDtype::kF16) {
    return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else {
    const __m512i x = _mm512_castps_si512(v);
    const __m512i top = _mm512_srli_epi32(x, 16);
    const __m512i bias = _mm512_add_epi32(_mm512_and_si512(top, _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7FFF));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, bias), 16);
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), top, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
  }
}
#elif defined(__AVX2__)
template <KvDtype D>
inline __m256 Load8(const Elem<D>* p) {
  if constexpr (D == KvDtype::kF32) {
    return _mm256_loadu_ps(p);
  } else if constexpr (D == KvDtype::kF16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
}

template <KvDtype D>
inline __m128i Narrow8(__m256 v) {
  if constexpr (D == KvDtype::kF16) {
    return _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  } else {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i top = _mm256_srli_epi32(x, 16);
    const __m256i bias = _mm256_add_epi32(_mm256_and_si256(top, _mm256_set1_epi32(1)), _mm256_set1_epi32(0x7FFF));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, bias), 16);
    const __m256i nan = _mm256_or_si256(top, _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));  // lanes <= 0xFFFF
  }
}
#endif

#if !defined(__AVX2__)
// The row p[0, n) as fp32: p itself for an fp32 cache, else widened into buf (n <= kMaxHalfKvHeadDim).
template <KvDtype D>
inline const float* WidenRow(const Elem<D>* p, int n, float* buf) {
  if constexpr (D == KvDtype::kF32) {
    return p;
  } else {
    for (int i = 0; i < n; ++i) buf[i] = Widen<D>(p[i]);
    return buf;
  }
}
#endif

// dst[0, n) = src[0, n) rounded to D.
template <KvDtype D>
void NarrowRow(const float* src, int n, Elem<D>* dst) {
  if constexpr (D == KvDtype::kF32) {
    std::memcpy(dst, src, sizeof(float) * n);
  } else {
    int i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), Narrow16<D>(_mm512_loadu_ps(src + i)));
#elif defined(__AVX2__)
    for (; i + 8 <= n; i += 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), Narrow8<D>(_mm256_loadu_ps(src + i)));
    }
#endif
    for (; i < n; ++i) dst[i] = Narrow<D>(src[i]);
  }
}

// q · k over n dims (k widened as it is loaded).
template <KvDtype D>
inline float Dot(const float* a, const Elem<D>* b, int n) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), Load16<D>(b + i), acc);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), Load16<D>(m, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
#elif defined(__AVX2__)
  // 8 lanes of fma in k order, the tail zero-padded (a half tail widened into tail[]: the same lanes an fp32 row
  // of the widened values would load), then a fixed horizontal sum.
  __m256 acc = _mm256_setzero_ps();
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), Load8<D>(b + i), acc);
  }
  if (i < n) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - i), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 bv;
    if constexpr (D == KvDtype::kF32) {
      bv = _mm256_maskload_ps(b + i, m);
    } else {
      alignas(32) float tail[8] = {};
      for (int j = 0; i + j < n; ++j) tail[j] = Widen<D>(b[i + j]);
      bv = _mm256_load_ps(tail);
    }
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), bv, acc);
  }
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
#else
  float buf[D == KvDtype::kF32 ? 1 : kMaxHalfKvHeadDim];
  const float* bf = WidenRow<D>(b, n, buf);
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * bf[i];
  return s;
#endif
}

// Offset of (block, kv_head, offset-in-block) in a [num_blocks, num_kv_heads, block_size, head_dim] cache.
inline int64_t CacheOffset(int64_t block, int kv_head, int offset, const PagedAttentionArgs& a) {
  return ((block * a.num_kv_heads + kv_head) * a.block_size + offset) * static_cast<int64_t>(a.head_dim);
}

template <KvDtype D>
inline const Elem<D>* CacheRow(const void* cache, int64_t block, int kv_head, const PagedAttentionArgs& a) {
  return static_cast<const Elem<D>*>(cache) + CacheOffset(block, kv_head, 0, a);
}

#if defined(__AVX512F__)
// Prefetches a block's rows for one KV head (blocks are scattered and only bs · hd elements long, too short for the
// hardware prefetcher to ramp up; at 64 sequences the cache is tens of MB and comes from DRAM).
// auto: the hint is GCC's enum _mm_hint but a plain int macro in clang (the sanitizer and fuzz builds).
template <auto kHint>
inline void PrefetchBlock(const void* rows, int bytes) {
  for (int off = 0; off < bytes; off += 64) _mm_prefetch(static_cast<const char*>(rows) + off, kHint);
}

// out[d0, d0 + 16 C) (masked to hd) = sum_p weights[p] * v_p[d0, ...), the accumulators in registers.
template <int C, KvDtype D>
void WeightedValuesChunk(const PagedAttentionArgs& a, const int32_t* table, int kv_head, int num_keys,
                         const float* weights, int d0, float* out) {
  const int hd = a.head_dim, bs = a.block_size;
  __mmask16 mask[C];
  __m512 acc[C];
  for (int c = 0; c < C; ++c) {
    const int valid = hd - d0 - 16 * c;
    mask[c] = valid >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << valid) - 1);
    acc[c] = _mm512_setzero_ps();
  }
  for (int p0 = 0; p0 < num_keys; p0 += bs) {
    const Elem<D>* v = CacheRow<D>(a.v_cache, table[p0 / bs], kv_head, a) + d0;
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
    for (int j = 0; j < keys; ++j, v += hd) {
      const __m512 w = _mm512_set1_ps(weights[p0 + j]);
      for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(w, Load16<D>(mask[c], v + 16 * c), acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(out + d0 + 16 * c, mask[c], acc[c]);
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// 8 elements of p widened, the first `valid` of them (the rest 0.0f) when valid < 8.
template <KvDtype D>
inline __m256 Load8Partial(const Elem<D>* p, int valid) {
  if (valid >= 8) return Load8<D>(p);
  if constexpr (D == KvDtype::kF32) {
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lanes));
  } else {
    alignas(32) float tail[8] = {};
    for (int j = 0; j < valid; ++j) tail[j] = Widen<D>(p[j]);
    return _mm256_load_ps(tail);
  }
}

// out[d0, d0 + 8 C) (cut to hd) = sum_p weights[p] * v_p[d0, ...), the accumulators in registers.
template <int C, KvDtype D>
void WeightedValuesChunk(const PagedAttentionArgs& a, const int32_t* table, int kv_head, int num_keys,
                         const float* weights, int d0, float* out) {
  const int hd = a.head_dim, bs = a.block_size;
  __m256 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm256_setzero_ps();
  const int last_valid = hd - d0 - 8 * (C - 1);  // 1..8 in the last chunk, 8 in the others
  for (int p0 = 0; p0 < num_keys; p0 += bs) {
    const Elem<D>* v = CacheRow<D>(a.v_cache, table[p0 / bs], kv_head, a) + d0;
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
    for (int j = 0; j < keys; ++j, v += hd) {
      const __m256 w = _mm256_set1_ps(weights[p0 + j]);
      for (int c = 0; c + 1 < C; ++c) acc[c] = _mm256_fmadd_ps(w, Load8<D>(v + 8 * c), acc[c]);
      acc[C - 1] = _mm256_fmadd_ps(w, Load8Partial<D>(v + 8 * (C - 1), last_valid), acc[C - 1]);
    }
  }
  for (int c = 0; c + 1 < C; ++c) _mm256_storeu_ps(out + d0 + 8 * c, acc[c]);
  alignas(32) float tail[8];
  _mm256_store_ps(tail, acc[C - 1]);
  std::memcpy(out + d0 + 8 * (C - 1), tail, sizeof(float) * last_valid);
}
#endif

// out[0, hd) = sum_p weights[p] * v_p over the sequence's positions p in [0, num_keys), block by block (the keys of
// a block are contiguous rows of head_dim). AVX-512: up to 64 dims of out stay in registers for the whole pass.
template <KvDtype D>
void WeightedValues(const PagedAttentionArgs& a, const int32_t* table, int kv_head, int num_keys,
                    const float* weights, float* out) {
  const int hd = a.head_dim;
#if defined(__AVX512F__)
  for (int d0 = 0; d0 < hd; d0 += 64) {  // up to 64 dims (4 registers of 16) per pass
    switch ((std::min(hd - d0, 64) + 15) / 16) {
      case 1: WeightedValuesChunk<1, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 2: WeightedValuesChunk<2, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 3: WeightedValuesChunk<3, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      default: WeightedValuesChunk<4, D>(a, table, kv_head, num_keys, weights, d0, out); break;
    }
  }
#elif defined(__AVX2__)
  // Up to 64 dims (8 registers of 8) per pass.
  for (int d0 = 0; d0 < hd; d0 += 64) {
    switch ((std::min(hd - d0, 64) + 7) / 8) {
      case 1: WeightedValuesChunk<1, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 2: WeightedValuesChunk<2, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 3: WeightedValuesChunk<3, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 4: WeightedValuesChunk<4, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 5: WeightedValuesChunk<5, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 6: WeightedValuesChunk<6, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 7: WeightedValuesChunk<7, D>(a, table, kv_head, num_keys, weights, d0, out); break;
      default: WeightedValuesChunk<8, D>(a, table, kv_head, num_keys, weights, d0, out); break;
    }
  }
#else
  const int bs = a.block_size;
  float buf[D == KvDtype::kF32 ? 1 : kMaxHalfKvHeadDim];
  std::memset(out, 0, sizeof(float) * hd);
  for (int p0 = 0; p0 < num_keys; p0 += bs) {
    const Elem<D>* v = CacheRow<D>(a.v_cache, table[p0 / bs], kv_head, a);
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
    for (int j = 0; j < keys; ++j, v += hd) {
      const float* vf = WidenRow<D>(v, hd, buf);
      for (int i = 0; i < hd; ++i) out[i] += weights[p0 + j] * vf[i];
    }
  }
#endif
}

template <KvDtype D>
void AttendOne(const PagedAttentionArgs& a, int token, int head, float* scores) {
  const int hd = a.head_dim, bs = a.block_size;
  const int kv_head = head / (a.num_heads / a.num_kv_heads);
  const float* q = a.q + (static_cast<int64_t>(token) * a.num_heads + head) * hd;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[token]) * a.max_blocks_per_seq;
  const int num_keys = a.positions[token] + 1;  // causal: positions 0..p
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float max_score = -INFINITY;
  for (int p0 = 0; p0 < num_keys; p0 += bs) {  // block by block: the keys of a block are contiguous
    const Elem<D>* k = CacheRow<D>(a.k_cache, table[p0 / bs], kv_head, a);
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
#if defined(__AVX512F__)
    // The next block's keys for this pass, and this block's values for the weighted sum that follows.
    constexpr int kElemBytes = sizeof(Elem<D>);
    if (p0 + bs < num_keys) {
      PrefetchBlock<_MM_HINT_T0>(CacheRow<D>(a.k_cache, table[p0 / bs + 1], kv_head, a), bs * hd * kElemBytes);
    }
    PrefetchBlock<_MM_HINT_T1>(CacheRow<D>(a.v_cache, table[p0 / bs], kv_head, a), keys * hd * kElemBytes);
#endif
    for (int j = 0; j < keys; ++j, k += hd) {
      const float s = Dot<D>(q, k, hd) * scale;
      scores[p0 + j] = s;
      max_score = s > max_score ? s : max_score;
    }
  }
  float sum = 0.0f;
  for (int p = 0; p < num_keys; ++p) {
    scores[p] = std::exp(scores[p] - max_score);
    sum += scores[p];
  }
  const float inv_sum = 1.0f / sum;
  for (int p = 0; p < num_keys; ++p) scores[p] *= inv_sum;
  WeightedValues<D>(a, table, kv_head, num_keys, scores,
                    a.out + (static_cast<int64_t>(token) * a.num_heads + head) * hd);
}

template <KvDtype D>
void AttendRange(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch) {
  for (int64_t item = item_begin; item < item_end; ++item) {
    AttendOne<D>(args, static_cast<int>(item / args.num_heads), static_cast<int>(item % args.num_heads), scratch);
  }
}

template <KvDtype D>
void WriteRows(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads, int head_dim,
               int block_size, int head_begin, int head_end, void* k_cache, void* v_cache) {
  for (int t = 0; t < num_tokens; ++t) {
    const int64_t block = slots[t] / block_size;
    const int offset = slots[t] % block_size;
    for (int h = head_begin; h < head_end; ++h) {
      const int64_t src = (static_cast<int64_t>(t) * num_kv_heads + h) * head_dim;
      const int64_t dst = ((block * num_kv_heads + h) * block_size + offset) * static_cast<int64_t>(head_dim);
      NarrowRow<D>(k + src, head_dim, static_cast<Elem<D>*>(k_cache) + dst);
      NarrowRow<D>(v + src, head_dim, static_cast<Elem<D>*>(v_cache) + dst);
    }
  }
}

}  // namespace

void PagedAttention(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch) {
  switch (args.kv_dtype) {
    case KvDtype::kF32:
      return AttendRange<KvDtype::kF32>(args, item_begin, item_end, scratch);
    case KvDtype::kF16:
      return AttendRange<KvDtype::kF16>(args, item_begin, item_end, scratch);
    case KvDtype::kBf16:
      return AttendRange<KvDtype::kBf16>(args, item_begin, item_end, scratch);
  }
}

void WriteKvCache(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads,
                  int head_dim, int block_size, int head_begin, int head_end, void* k_cache, void* v_cache,
                  KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF32:
      return WriteRows<KvDtype::kF32>(k, v, slots, num_tokens, num_kv_heads, head_dim, block_size, head_begin,
                                      head_end, k_cache, v_cache);
    case KvDtype::kF16:
      return WriteRows<KvDtype::kF16>(k, v, slots, num_tokens, num_kv_heads, head_dim, block_size, head_begin,
                                      head_end, k_cache, v_cache);
    case KvDtype::kBf16:
      return WriteRows<KvDtype::kBf16>(k, v, slots, num_tokens, num_kv_heads, head_dim, block_size, head_begin,
                                       head_end, k_cache, v_cache);
  }
}

}  // namespace llama::LLAMA_CPU_ISA_NS
