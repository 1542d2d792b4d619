#include <cfloat>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "base/status_macros.h"
#include "engine/counter_rng.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/numeric.cuh"
#include "engine/cuda/sampling.cuh"

namespace llama::cuda {
namespace {

constexpr int kThreads = 1024;

// The host's CounterUniform, compiled for the device (engine/counter_rng.h): both backends draw the same u.
__device__ float DeviceCounterUniform(uint64_t seed, int64_t step) { return CounterUniformOf(seed, step); }

__device__ bool IsGreedy(const DeviceSampleRow& row) { return row.temperature == 0.0f || row.top_k == 1; }

// Block-wide argmax; the lowest id wins ties, as in the CPU ArgMax. Every thread gets the result.
__device__ void BlockArgMax(const float* v, int n, float* best_value, int* best_index) {
  __shared__ float s_value[kThreads / 32];
  __shared__ int s_index[kThreads / 32];
  float bv = -FLT_MAX;
  int bi = n;  // sentinel larger than any id
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    if (v[i] > bv || bi == n) { bv = v[i]; bi = i; }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, offset);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, offset);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  if (threadIdx.x % 32 == 0) { s_value[threadIdx.x / 32] = bv; s_index[threadIdx.x / 32] = bi; }
  __syncthreads();
  bv = s_value[0];
  bi = s_index[0];
  for (int w = 1; w < blockDim.x / 32; ++w) {
    if (s_value[w] > bv || (s_value[w] == bv && s_index[w] < bi)) { bv = s_value[w]; bi = s_index[w]; }
  }
  *best_value = bv;
  *best_index = bi;
  __syncthreads();
}

// Per row: penalised logits → greedy token, or unnormalised probabilities exp((l - max) / T) (+ sort keys).
// probs: [num_rows, vocab]; keys: [num_rows, vocab].
__global__ void PrepareKernel(const float* logits, int vocab, const DeviceSampleRow* rows, const int32_t* penalty,
                              float* probs, uint64_t* keys, int32_t* tokens) {
  const int r = blockIdx.x;
  const DeviceSampleRow row = rows[r];
  if (!row.active) {
    if (threadIdx.x == 0) tokens[r] = -1;
    return;
  }
  float* work = probs + static_cast<int64_t>(r) * vocab;
  const float* in = logits + static_cast<int64_t>(r) * vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) work[i] = in[i];
  __syncthreads();
  if (row.repetition_penalty != 1.0f) {
    // The ids are distinct (OutputRow contract), so no two threads touch the same logit.
    for (int i = row.penalty_begin + threadIdx.x; i < row.penalty_end; i += blockDim.x) {
      const int id = penalty[i];
      if (id < 0 || id >= vocab) continue;
      const float l = work[id];
      work[id] = l > 0.0f ? l / row.repetition_penalty : l * row.repetition_penalty;
    }
  }
  __syncthreads();
  float max_logit;
  int arg;
  BlockArgMax(work, vocab, &max_logit, &arg);
  if (IsGreedy(row)) {
    if (threadIdx.x == 0) tokens[r] = arg;
    return;
  }
  const float inv_t = 1.0f / row.temperature;
  uint64_t* key = keys + static_cast<int64_t>(r) * vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float p = expf((work[i] - max_logit) * inv_t);
    work[i] = p;
    // Probabilities are >= 0, so their bit patterns order like the values; ~id makes ties go lowest id first
    // in a descending sort.
    if (row.sorted) key[i] = (static_cast<uint64_t>(__float_as_uint(p)) << 32) | static_cast<uint32_t>(~i);
  }
}

// The i-th candidate of a row: in id order, or in (probability desc, id asc) order from the sorted keys.
struct Candidates {
  const float* probs;
  const uint64_t* sorted;
  __device__ float Prob(int i) const { return sorted ? __uint_as_float(static_cast<uint32_t>(sorted[i] >> 32)) : probs[i]; }
  __device__ int Id(int i) const { return sorted ? static_cast<int>(~static_cast<uint32_t>(sorted[i])) : i; }
};

using BlockScan = cub::BlockScan<double, kThreads>;

// First i < n whose inclusive prefix sum of probabilities is >= threshold (or > threshold when strict); returns
// n if none, and the prefix sum up to and including it (or the total) in *prefix.
__device__ int FirstPrefixAtLeast(const Candidates& c, int n, double threshold, bool strict, double* prefix) {
  __shared__ typename BlockScan::TempStorage scan_storage;
  __shared__ int s_found;
  __shared__ double s_prefix;
  __shared__ double s_carry;
  if (threadIdx.x == 0) { s_found = n; s_carry = 0.0; }
  __syncthreads();
  for (int base = 0; base < n; base += blockDim.x) {
    const int i = base + threadIdx.x;
    const double v = i < n ? static_cast<double>(c.Prob(i)) : 0.0;
    double incl, total;
    BlockScan(scan_storage).InclusiveSum(v, incl, total);
    incl += s_carry;
    const bool hit = i < n && (strict ? incl > threshold : incl >= threshold);
    if (hit) atomicMin(&s_found, i);
    __syncthreads();
    if (s_found == i) s_prefix = incl;
    if (threadIdx.x == 0) s_carry += total;
    __syncthreads();
    if (s_found < n) break;
  }
  *prefix = s_found < n ? s_prefix : s_carry;
  const int found = s_found;
  __syncthreads();
  return found;
}

// Truncation (top-k, top-p) and the inverse-CDF draw, mirroring SampleToken step for step.
__global__ void FinishKernel(const DeviceSampleRow* rows, const float* probs, const uint64_t* sorted_keys, int vocab,
                             int32_t* tokens) {
  const int r = blockIdx.x;
  const DeviceSampleRow row = rows[r];
  if (!row.active || IsGreedy(row)) return;
  const Candidates c{probs + static_cast<int64_t>(r) * vocab,
                     row.sorted ? sorted_keys + static_cast<int64_t>(r) * vocab : nullptr};
  int kept = (row.top_k > 0 && row.top_k < vocab) ? row.top_k : vocab;
  double sum;
  FirstPrefixAtLeast(c, kept, /*threshold=*/INFINITY, /*strict=*/false, &sum);  // total of the kept candidates
  if (row.top_p < 1.0f) {
    double acc;
    const int last = FirstPrefixAtLeast(c, kept, static_cast<double>(row.top_p) * sum, false, &acc);
    kept = last < kept ? last + 1 : kept;
    sum = acc;
  }
  const double u = static_cast<double>(DeviceCounterUniform(row.seed, row.step)) * sum;
  double cdf;
  const int pick = FirstPrefixAtLeast(c, kept, u, /*strict=*/true, &cdf);
  if (threadIdx.x == 0) tokens[r] = c.Id(pick < kept ? pick : kept - 1);
}

}  // namespace

absl::Status DeviceSampler::Upload(absl::Span<const OutputRow> rows, int vocab, cudaStream_t stream) {
  const int num_rows = static_cast<int>(rows.size());
  host_rows_.assign(num_rows, DeviceSampleRow{});
  host_penalty_tokens_.clear();
  for (int r = 0; r < num_rows; ++r) {
    const OutputRow& o = rows[r];
    DeviceSampleRow& d = host_rows_[r];
    d.active = o.sample ? 1 : 0;
    d.temperature = o.params.temperature;
    d.top_p = o.params.top_p;
    d.top_k = o.params.top_k;
    d.repetition_penalty = o.params.repetition_penalty;
    d.seed = o.seed;
    d.step = o.step;
    d.sorted = (o.params.top_k > 0 && o.params.top_k < vocab) || o.params.top_p < 1.0f;
    d.penalty_begin = static_cast<int32_t>(host_penalty_tokens_.size());
    host_penalty_tokens_.insert(host_penalty_tokens_.end(), o.penalty_tokens.begin(), o.penalty_tokens.end());
    d.penalty_end = static_cast<int32_t>(host_penalty_tokens_.size());
  }
  host_offsets_.resize(num_rows + 1);
  for (int r = 0; r <= num_rows; ++r) host_offsets_[r] = r * vocab;
  RETURN_IF_ERROR(rows_.Reserve(sizeof(DeviceSampleRow) * num_rows));
  RETURN_IF_ERROR(penalty_tokens_.Reserve(sizeof(int32_t) * (host_penalty_tokens_.size() + 1)));
  RETURN_IF_ERROR(offsets_.Reserve(sizeof(int32_t) * (num_rows + 1)));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(rows_.get(), host_rows_.data(), sizeof(DeviceSampleRow) * num_rows,
                                       cudaMemcpyHostToDevice, stream));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(penalty_tokens_.get(), host_penalty_tokens_.data(),
                                       sizeof(int32_t) * host_penalty_tokens_.size(), cudaMemcpyHostToDevice,
                                       stream));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(offsets_.get(), host_offsets_.data(), sizeof(int32_t) * (num_rows + 1),
                                       cudaMemcpyHostToDevice, stream));
  return absl::OkStatus();
}

absl::Status DeviceSampler::SortCandidates(int num_rows, int vocab, cudaStream_t stream) {
  const int num_items = num_rows * vocab;
  const int32_t* offsets = offsets_.as<int32_t>();
  size_t temp_bytes = 0;
  CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeysDescending(
      nullptr, temp_bytes, keys_.as<uint64_t>(), sorted_keys_.as<uint64_t>(), num_items, num_rows, offsets,
      offsets + 1, 0, 64, stream));
  RETURN_IF_ERROR(sort_temp_.Reserve(static_cast<int64_t>(temp_bytes)));
  CUDA_RETURN_IF_ERROR(cub::DeviceSegmentedRadixSort::SortKeysDescending(
      sort_temp_.get(), temp_bytes, keys_.as<uint64_t>(), sorted_keys_.as<uint64_t>(), num_items, num_rows, offsets,
      offsets + 1, 0, 64, stream));
  return absl::OkStatus();
}

absl::Status DeviceSampler::Sample(const float* logits, int vocab, absl::Span<const OutputRow> rows, int32_t* tokens,
                                   cudaStream_t stream) {
  const int num_rows = static_cast<int>(rows.size());
  if (num_rows == 0) return absl::OkStatus();
  RETURN_IF_ERROR(Upload(rows, vocab, stream));
  bool any_sorted = false;
  for (const DeviceSampleRow& d : host_rows_) any_sorted |= d.active && d.sorted && d.temperature != 0.0f;
  const int64_t cells = static_cast<int64_t>(num_rows) * vocab;
  RETURN_IF_ERROR(probs_.Reserve(cells * sizeof(float)));
  if (any_sorted) {
    RETURN_IF_ERROR(keys_.Reserve(cells * sizeof(uint64_t)));
    RETURN_IF_ERROR(sorted_keys_.Reserve(cells * sizeof(uint64_t)));
  }
  const auto* device_rows = rows_.as<DeviceSampleRow>();
  PrepareKernel<<<num_rows, kThreads, 0, stream>>>(logits, vocab, device_rows, penalty_tokens_.as<int32_t>(),
                                                   probs_.as<float>(), any_sorted ? keys_.as<uint64_t>() : nullptr,
                                                   tokens);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  if (any_sorted) RETURN_IF_ERROR(SortCandidates(num_rows, vocab, stream));
  FinishKernel<<<num_rows, kThreads, 0, stream>>>(device_rows, probs_.as<float>(), sorted_keys_.as<uint64_t>(), vocab,
                                                  tokens);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return absl::OkStatus();
}

}  // namespace llama::cuda
