#include "engine/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#if defined(__AVX512F__)
// GCC 12 flags the intrinsics' internal _mm512_undefined_ps() inside _mm512_reduce_add_ps (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace llama::LLAMA_CPU_ISA_NS {
namespace {

inline float Dot(const float* a, const float* b, int n) {
#if defined(__AVX512F__)
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
#else
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
#endif
}

// Offset of (block, kv_head, offset-in-block) in a [num_blocks, num_kv_heads, block_size, head_dim] cache.
inline int64_t CacheOffset(int64_t block, int kv_head, int offset, const PagedAttentionArgs& a) {
  return ((block * a.num_kv_heads + kv_head) * a.block_size + offset) * static_cast<int64_t>(a.head_dim);
}

#if defined(__AVX512F__)
// Prefetches a block's rows for one KV head (blocks are scattered and only bs · hd floats long, too short for the
// hardware prefetcher to ramp up; at 64 sequences the cache is tens of MB and comes from DRAM).
// auto: the hint is GCC's enum _mm_hint but a plain int macro in clang (the sanitizer and fuzz builds).
template <auto kHint>
inline void PrefetchBlock(const float* rows, int bytes) {
  for (int off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(rows) + off, kHint);
}

// out[d0, d0 + 16 C) (masked to hd) = sum_p weights[p] * v_p[d0, ...), the accumulators in registers.
template <int C>
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
    const float* v = a.v_cache + CacheOffset(table[p0 / bs], kv_head, 0, a) + d0;
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
    for (int j = 0; j < keys; ++j, v += hd) {
      const __m512 w = _mm512_set1_ps(weights[p0 + j]);
      for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(mask[c], v + 16 * c), acc[c]);
    }
  }
  for (int c = 0; c < C; ++c) _mm512_mask_storeu_ps(out + d0 + 16 * c, mask[c], acc[c]);
}
#endif

// out[0, hd) = sum_p weights[p] * v_p over the sequence's positions p in [0, num_keys), block by block (the keys of
// a block are contiguous rows of head_dim). AVX-512: up to 64 dims of out stay in registers for the whole pass.
void WeightedValues(const PagedAttentionArgs& a, const int32_t* table, int kv_head, int num_keys,
                    const float* weights, float* out) {
  const int hd = a.head_dim;
#if defined(__AVX512F__)
  for (int d0 = 0; d0 < hd; d0 += 64) {
    switch ((std::min(hd - d0, 64) + 15) / 16) {
      case 1: WeightedValuesChunk<1>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 2: WeightedValuesChunk<2>(a, table, kv_head, num_keys, weights, d0, out); break;
      case 3: WeightedValuesChunk<3>(a, table, kv_head, num_keys, weights, d0, out); break;
      default: WeightedValuesChunk<4>(a, table, kv_head, num_keys, weights, d0, out); break;
    }
  }
#else
  const int bs = a.block_size;
  std::memset(out, 0, sizeof(float) * hd);
  for (int p0 = 0; p0 < num_keys; p0 += bs) {
    const float* v = a.v_cache + CacheOffset(table[p0 / bs], kv_head, 0, a);
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
    for (int j = 0; j < keys; ++j, v += hd)
      for (int i = 0; i < hd; ++i) out[i] += weights[p0 + j] * v[i];
  }
#endif
}

void AttendOne(const PagedAttentionArgs& a, int token, int head, float* scores) {
  const int hd = a.head_dim, bs = a.block_size;
  const int kv_head = head / (a.num_heads / a.num_kv_heads);
  const float* q = a.q + (static_cast<int64_t>(token) * a.num_heads + head) * hd;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[token]) * a.max_blocks_per_seq;
  const int num_keys = a.positions[token] + 1;  // causal: positions 0..p
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float max_score = -INFINITY;
  for (int p0 = 0; p0 < num_keys; p0 += bs) {  // block by block: the keys of a block are contiguous
    const float* k = a.k_cache + CacheOffset(table[p0 / bs], kv_head, 0, a);
    const int keys = num_keys - p0 < bs ? num_keys - p0 : bs;
#if defined(__AVX512F__)
    // The next block's keys for this pass, and this block's values for the weighted sum that follows.
    if (p0 + bs < num_keys)
      PrefetchBlock<_MM_HINT_T0>(a.k_cache + CacheOffset(table[p0 / bs + 1], kv_head, 0, a), bs * hd * 4);
    PrefetchBlock<_MM_HINT_T1>(a.v_cache + CacheOffset(table[p0 / bs], kv_head, 0, a), keys * hd * 4);
#endif
    for (int j = 0; j < keys; ++j, k += hd) {
      const float s = Dot(q, k, hd) * scale;
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
  WeightedValues(a, table, kv_head, num_keys, scores,
                 a.out + (static_cast<int64_t>(token) * a.num_heads + head) * hd);
}

}  // namespace

void PagedAttention(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch) {
  for (int64_t item = item_begin; item < item_end; ++item) {
    AttendOne(args, static_cast<int>(item / args.num_heads), static_cast<int>(item % args.num_heads), scratch);
  }
}

void WriteKvCache(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads,
                  int head_dim, int block_size, int head_begin, int head_end, float* k_cache, float* v_cache) {
  for (int t = 0; t < num_tokens; ++t) {
    const int64_t block = slots[t] / block_size;
    const int offset = slots[t] % block_size;
    for (int h = head_begin; h < head_end; ++h) {
      const int64_t src = (static_cast<int64_t>(t) * num_kv_heads + h) * head_dim;
      const int64_t dst = ((block * num_kv_heads + h) * block_size + offset) * static_cast<int64_t>(head_dim);
      std::memcpy(k_cache + dst, k + src, sizeof(float) * head_dim);
      std::memcpy(v_cache + dst, v + src, sizeof(float) * head_dim);
    }
  }
}

}  // namespace llama::LLAMA_CPU_ISA_NS
