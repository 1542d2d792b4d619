#include "engine/cpu/paged_attention.h"

#include <cmath>
#include <cstring>

#if defined(__AVX512F__)
// GCC 12 flags the intrinsics' internal _mm512_undefined_ps() inside _mm512_reduce_add_ps (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace llama {
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

// out[0, n) += w * v[0, n)
inline void Axpy(float w, const float* v, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] += w * v[i];
}

// Offset of (block, kv_head, offset-in-block) in a [num_blocks, num_kv_heads, block_size, head_dim] cache.
inline int64_t CacheOffset(int64_t block, int kv_head, int offset, const PagedAttentionArgs& a) {
  return ((block * a.num_kv_heads + kv_head) * a.block_size + offset) * static_cast<int64_t>(a.head_dim);
}

void AttendOne(const PagedAttentionArgs& a, int token, int head, float* scores) {
  const int hd = a.head_dim;
  const int kv_head = head / (a.num_heads / a.num_kv_heads);
  const float* q = a.q + (static_cast<int64_t>(token) * a.num_heads + head) * hd;
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[token]) * a.max_blocks_per_seq;
  const int num_keys = a.positions[token] + 1;  // causal: positions 0..p
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  float max_score = -INFINITY;
  for (int p = 0; p < num_keys; ++p) {
    const float* k = a.k_cache + CacheOffset(table[p / a.block_size], kv_head, p % a.block_size, a);
    scores[p] = Dot(q, k, hd) * scale;
    max_score = scores[p] > max_score ? scores[p] : max_score;
  }
  float sum = 0.0f;
  for (int p = 0; p < num_keys; ++p) {
    scores[p] = std::exp(scores[p] - max_score);
    sum += scores[p];
  }
  const float inv_sum = 1.0f / sum;
  float* out = a.out + (static_cast<int64_t>(token) * a.num_heads + head) * hd;
  std::memset(out, 0, sizeof(float) * hd);
  for (int p = 0; p < num_keys; ++p) {
    const float* v = a.v_cache + CacheOffset(table[p / a.block_size], kv_head, p % a.block_size, a);
    Axpy(scores[p] * inv_sum, v, hd, out);
  }
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

}  // namespace llama
