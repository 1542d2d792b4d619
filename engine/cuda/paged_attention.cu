#include <cfloat>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/numeric.cuh"
#include "engine/cuda/paged_attention.cuh"

namespace llama::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kDimsPerLane = kMaxAttentionHeadDim / 32;

// Grid (num_tokens, num_heads), kWarps warps per block. Warp w handles key positions w, w + kWarps, ...; lane l
// holds dims l, l + 32, ... of q and of its running output. The warps' partial softmax states merge at the end.
template <typename KvT, typename OutT>
__global__ void PagedAttentionKernel(PagedAttentionArgs a) {
  __shared__ float warp_max[kWarps];
  __shared__ float warp_sum[kWarps];
  __shared__ float warp_acc[kWarps][kMaxAttentionHeadDim];
  const int t = blockIdx.x;
  const int h = blockIdx.y;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int kv_head = h / (a.num_heads / a.num_kv_heads);
  const int last_pos = a.positions[t];
  const int32_t* table = a.block_tables + static_cast<int64_t>(a.token_seq[t]) * a.max_blocks_per_seq;
  const KvT* k_cache = static_cast<const KvT*>(a.k_cache);
  const KvT* v_cache = static_cast<const KvT*>(a.v_cache);

  float q[kDimsPerLane];
  float acc[kDimsPerLane];
  const float* q_row = a.q + static_cast<int64_t>(t) * a.q_row_stride + h * a.head_dim;
  for (int j = 0; j < kDimsPerLane; ++j) {
    const int d = lane + 32 * j;
    q[j] = d < a.head_dim ? q_row[d] * a.scale : 0.0f;
    acc[j] = 0.0f;
  }
  float running_max = -FLT_MAX;
  float running_sum = 0.0f;
  for (int pos = warp; pos <= last_pos; pos += kWarps) {
    const int64_t block = table[pos / a.block_size];
    const int64_t base = ((block * a.num_kv_heads + kv_head) * a.block_size + pos % a.block_size) * a.head_dim;
    float dot = 0.0f;
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < a.head_dim) dot += q[j] * ToFloat(k_cache[base + d]);
    }
    const float score = WarpSum(dot);
    const float new_max = fmaxf(running_max, score);
    const float correction = expf(running_max - new_max);
    const float p = expf(score - new_max);
    running_sum = running_sum * correction + p;
    for (int j = 0; j < kDimsPerLane; ++j) {
      const int d = lane + 32 * j;
      const float v = d < a.head_dim ? ToFloat(v_cache[base + d]) : 0.0f;
      acc[j] = acc[j] * correction + p * v;
    }
    running_max = new_max;
  }
  if (lane == 0) {
    warp_max[warp] = running_max;
    warp_sum[warp] = running_sum;
  }
  for (int j = 0; j < kDimsPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d < a.head_dim) warp_acc[warp][d] = acc[j];
  }
  __syncthreads();
  float global_max = -FLT_MAX;
  for (int w = 0; w < kWarps; ++w) global_max = fmaxf(global_max, warp_max[w]);
  float total = 0.0f;
  float weight[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    // A warp that saw no positions has sum 0 and contributes nothing.
    weight[w] = warp_sum[w] > 0.0f ? expf(warp_max[w] - global_max) : 0.0f;
    total += warp_sum[w] * weight[w];
  }
  OutT* out = static_cast<OutT*>(a.out) + static_cast<int64_t>(t) * a.num_heads * a.head_dim + h * a.head_dim;
  for (int d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w) o += warp_acc[w][d] * weight[w];
    out[d] = FromFloat<OutT>(o / total);
  }
}

template <typename KvT>
void LaunchForKv(const PagedAttentionArgs& a, cudaStream_t stream) {
  const dim3 grid(a.num_tokens, a.num_heads);
  switch (a.out_dtype) {
    case DType::kF32:
      PagedAttentionKernel<KvT, float><<<grid, kWarps * 32, 0, stream>>>(a);
      break;
    case DType::kF16:
      PagedAttentionKernel<KvT, __half><<<grid, kWarps * 32, 0, stream>>>(a);
      break;
    case DType::kBF16:
      PagedAttentionKernel<KvT, __nv_bfloat16><<<grid, kWarps * 32, 0, stream>>>(a);
      break;
  }
}

}  // namespace

absl::Status PagedAttention(const PagedAttentionArgs& args, cudaStream_t stream) {
  if (args.head_dim <= 0 || args.head_dim > kMaxAttentionHeadDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("PagedAttention: head_dim ", args.head_dim, " not in [1, ", kMaxAttentionHeadDim, "]"));
  }
  if (args.num_kv_heads <= 0 || args.num_heads % args.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("PagedAttention: num_kv_heads ", args.num_kv_heads,
                                                   " does not divide num_heads ", args.num_heads));
  }
  if (args.num_tokens == 0) return absl::OkStatus();
  LLAMA_DISPATCH_DTYPE(args.kv_dtype, [&] { LaunchForKv<T>(args, stream); });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
