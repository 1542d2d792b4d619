#include "engine/cuda/cuda_backend.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/embedding.cuh"
#include "engine/cuda/kv_write.cuh"
#include "engine/cuda/paged_attention.cuh"
#include "engine/cuda/rms_norm.cuh"
#include "engine/cuda/rope.cuh"
#include "engine/cuda/swiglu.cuh"
#include "engine/model/model_shapes.h"

namespace llama::cuda {
namespace {

absl::Status SelectDevice(int device) {
  const int count = CudaDeviceCount();
  if (count == 0) return absl::FailedPreconditionError("CUDA backend: no CUDA device is visible");
  if (device < 0 || device >= count) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA backend: device ", device, " not in [0, ", count, ")"));
  }
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  return absl::OkStatus();
}

}  // namespace

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

absl::Status CudaBackendOptions::Validate() const {
  if (model_dir.empty() == dummy_weights.empty()) {
    return absl::InvalidArgumentError("CUDA backend: give exactly one of --model_dir and --dummy_weights");
  }
  RETURN_IF_ERROR(ParseDType(dtype).status());
  KvCachePoolOptions kv{block_size, num_blocks, kv_cache_memory_fraction};
  return kv.Validate();
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const CudaBackendOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::Create(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackendFromWeights(const ModelWeights& weights,
                                                                      const CudaBackendOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::Create(weights, options));
  return std::unique_ptr<Backend>(std::move(backend));
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const CudaBackendOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  if (!options.model_dir.empty()) {
    ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(options.model_dir));
    return Create(weights, options);
  }
  ASSIGN_OR_RETURN(ModelConfig config, NamedModelConfig(options.dummy_weights));
  ASSIGN_OR_RETURN(DType dtype, ParseDType(options.dtype));
  RETURN_IF_ERROR(SelectDevice(options.device));
  auto backend = std::unique_ptr<CudaBackend>(new CudaBackend());
  ASSIGN_OR_RETURN(backend->stream_, CudaStream::Create());
  ASSIGN_OR_RETURN(backend->weights_,
                   MakeDummyDeviceWeights(config, dtype, options.dummy_seed, backend->stream_.get()));
  return Finish(std::move(backend), options);
}

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const ModelWeights& weights,
                                                                 const CudaBackendOptions& options) {
  ASSIGN_OR_RETURN(DType dtype, ParseDType(options.dtype));
  RETURN_IF_ERROR((KvCachePoolOptions{options.block_size, options.num_blocks, options.kv_cache_memory_fraction}
                       .Validate()));
  RETURN_IF_ERROR(SelectDevice(options.device));
  auto backend = std::unique_ptr<CudaBackend>(new CudaBackend());
  ASSIGN_OR_RETURN(backend->stream_, CudaStream::Create());
  ASSIGN_OR_RETURN(backend->weights_, UploadWeights(weights, dtype, backend->stream_.get()));
  return Finish(std::move(backend), options);
}

// Weights are on the device: the KV pool takes its share of what is left.
absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Finish(std::unique_ptr<CudaBackend> backend,
                                                                 const CudaBackendOptions& options) {
  const ModelConfig& c = backend->weights_.config;
  if (c.head_dim() > kMaxAttentionHeadDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("CUDA backend: head_dim ", c.head_dim(), " exceeds ", kMaxAttentionHeadDim));
  }
  ASSIGN_OR_RETURN(backend->cublas_, CublasHandle::Create(backend->stream_.get(), options.allow_tf32));
  KvCachePoolOptions kv{options.block_size, options.num_blocks, options.kv_cache_memory_fraction};
  ASSIGN_OR_RETURN(backend->kv_, KvCachePool::Create(c, backend->weights_.dtype, kv));
  return backend;
}

std::string CudaBackend::name() const { return absl::StrCat("cuda-", DTypeName(weights_.dtype)); }

int CudaBackend::qkv_dim() const {
  const ModelConfig& c = weights_.config;
  return (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim();
}

absl::Status CudaBackend::Reserve(int n, int r) {
  const ModelConfig& c = weights_.config;
  const int64_t b = DTypeBytes(weights_.dtype);
  const int64_t dim = c.hidden_size, inter = c.intermediate_size;
  RETURN_IF_ERROR(x_.Reserve(n * dim * 4));
  // xn_ also holds the r final-norm rows (r <= n).
  RETURN_IF_ERROR(xn_.Reserve(n * dim * b));
  RETURN_IF_ERROR(qkv_.Reserve(int64_t{n} * qkv_dim() * 4));
  RETURN_IF_ERROR(attn_.Reserve(int64_t{n} * c.num_attention_heads * c.head_dim() * b));
  RETURN_IF_ERROR(gate_up_.Reserve(n * 2 * inter * 4));
  RETURN_IF_ERROR(act_.Reserve(n * inter * b));
  RETURN_IF_ERROR(logits_.Reserve(int64_t{r} * weights_.output_rows * 4));
  RETURN_IF_ERROR(hidden_.Reserve(r * dim * 4));
  RETURN_IF_ERROR(tokens_.Reserve(int64_t{r} * 4));
  return absl::OkStatus();
}

absl::Status CudaBackend::UploadBatch(const ForwardInput& in) {
  const int n = in.num_tokens();
  const int r = static_cast<int>(in.outputs.size());
  host_meta_.clear();
  host_meta_.insert(host_meta_.end(), in.token_ids.begin(), in.token_ids.end());
  host_meta_.insert(host_meta_.end(), in.positions.begin(), in.positions.end());
  host_meta_.insert(host_meta_.end(), in.slot_mapping.begin(), in.slot_mapping.end());
  for (int s = 0; s < in.num_seqs(); ++s) {
    for (int t = in.query_start[s]; t < in.query_start[s + 1]; ++t) host_meta_.push_back(s);
  }
  for (const OutputRow& o : in.outputs) host_meta_.push_back(o.token_index);
  host_meta_.insert(host_meta_.end(), in.block_tables.begin(), in.block_tables.end());
  RETURN_IF_ERROR(meta_.Reserve(static_cast<int64_t>(host_meta_.size()) * 4));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(meta_.get(), host_meta_.data(), host_meta_.size() * 4,
                                       cudaMemcpyHostToDevice, stream_.get()));
  const int32_t* base = meta_.as<int32_t>();
  d_token_ids_ = base;
  d_positions_ = base + n;
  d_slots_ = base + 2 * n;
  d_token_seq_ = base + 3 * n;
  d_out_index_ = base + 4 * n;
  d_block_tables_ = base + 4 * n + r;
  return absl::OkStatus();
}

absl::Status CudaBackend::Forward(const ForwardInput& input, ForwardOutput* output) {
  const ModelConfig& c = weights_.config;
  RETURN_IF_ERROR(input.Validate(c, kv_.spec()));
  if (weights_.reward) {
    for (const OutputRow& o : input.outputs) {
      if (o.sample) return absl::InvalidArgumentError("CUDA backend: a reward model's rows cannot be sampled");
    }
  }
  const int n = input.num_tokens();
  const int r = static_cast<int>(input.outputs.size());
  RETURN_IF_ERROR(kv_.CopyBlocks(input.block_copies, stream_.get()));
  *output = ForwardOutput{};
  if (n > 0) {
    RETURN_IF_ERROR(Reserve(n, r));
    RETURN_IF_ERROR(UploadBatch(input));
    RETURN_IF_ERROR(EmbeddingLookup(weights_.embed.get(), weights_.dtype, d_token_ids_, n, c.hidden_size,
                                    x_.as<float>(), stream_.get()));
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      RETURN_IF_ERROR(AttentionBlock(l, input));
      RETURN_IF_ERROR(FfnBlock(l, n));
    }
    if (r > 0) RETURN_IF_ERROR(ComputeOutputs(input, output));
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_.get()));
  if (r > 0) output->sampled_tokens = host_tokens_;
  if (weights_.reward && !weights_.score_bias.empty()) {
    for (int o = 0; o < r && !output->logits.empty(); ++o) {
      for (int j = 0; j < weights_.output_rows; ++j) output->logits[o * weights_.output_rows + j] += weights_.score_bias[j];
    }
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::AttentionBlock(int layer, const ForwardInput& in) {
  const ModelConfig& c = weights_.config;
  const DeviceLayerWeights& w = weights_.layers[layer];
  const int n = in.num_tokens(), dim = c.hidden_size, hd = c.head_dim();
  const int q_dim = c.num_attention_heads * hd, kv_dim = c.num_key_value_heads * hd;
  cudaStream_t s = stream_.get();
  RETURN_IF_ERROR(RmsNorm(x_.as<float>(), w.attn_norm.as<float>(), nullptr, n, dim, c.rms_norm_eps, xn_.get(),
                          weights_.dtype, s));
  // [n, q_dim + 2 kv_dim] = xn · wqkvᵀ
  RETURN_IF_ERROR(Gemm(cublas_, xn_.get(), w.wqkv.get(), weights_.dtype, qkv_.as<float>(), n, qkv_dim(), dim, 0.0f));
  RETURN_IF_ERROR(ApplyRope(qkv_.as<float>(), qkv_dim(), c.num_attention_heads + c.num_key_value_heads, hd,
                            d_positions_, n, c.rope_theta, c.rope_scaling_factor, s));
  KvWriteArgs kw;
  kw.qkv = qkv_.as<float>();
  kw.row_stride = qkv_dim();
  kw.k_offset = q_dim;
  kw.v_offset = q_dim + kv_dim;
  kw.slot_mapping = d_slots_;
  kw.num_tokens = n;
  kw.num_kv_heads = c.num_key_value_heads;
  kw.head_dim = hd;
  kw.block_size = kv_.spec().block_size;
  kw.k_cache = kv_.k(layer);
  kw.v_cache = kv_.v(layer);
  kw.dtype = kv_.dtype();
  RETURN_IF_ERROR(WriteKv(kw, s));
  PagedAttentionArgs pa;
  pa.q = qkv_.as<float>();
  pa.q_row_stride = qkv_dim();
  pa.k_cache = kv_.k(layer);
  pa.v_cache = kv_.v(layer);
  pa.kv_dtype = kv_.dtype();
  pa.positions = d_positions_;
  pa.token_seq = d_token_seq_;
  pa.block_tables = d_block_tables_;
  pa.max_blocks_per_seq = in.max_blocks_per_seq;
  pa.num_tokens = n;
  pa.num_heads = c.num_attention_heads;
  pa.num_kv_heads = c.num_key_value_heads;
  pa.head_dim = hd;
  pa.block_size = kv_.spec().block_size;
  pa.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  pa.out = attn_.get();
  pa.out_dtype = weights_.dtype;
  RETURN_IF_ERROR(PagedAttention(pa, s));
  // x += attn · woᵀ
  return Gemm(cublas_, attn_.get(), w.wo.get(), weights_.dtype, x_.as<float>(), n, dim, q_dim, 1.0f);
}

absl::Status CudaBackend::FfnBlock(int layer, int n) {
  const ModelConfig& c = weights_.config;
  const DeviceLayerWeights& w = weights_.layers[layer];
  const int dim = c.hidden_size, inter = c.intermediate_size;
  cudaStream_t s = stream_.get();
  RETURN_IF_ERROR(RmsNorm(x_.as<float>(), w.ffn_norm.as<float>(), nullptr, n, dim, c.rms_norm_eps, xn_.get(),
                          weights_.dtype, s));
  RETURN_IF_ERROR(Gemm(cublas_, xn_.get(), w.w_gate_up.get(), weights_.dtype, gate_up_.as<float>(), n, 2 * inter,
                       dim, 0.0f));
  RETURN_IF_ERROR(SiluMul(gate_up_.as<float>(), n, inter, act_.get(), weights_.dtype, s));
  // x += act · w_downᵀ
  return Gemm(cublas_, act_.get(), w.w_down.get(), weights_.dtype, x_.as<float>(), n, dim, inter, 1.0f);
}

// Final RMSNorm of the output rows only, output projection, sampling; results copied back (stream-ordered; the
// caller synchronises).
absl::Status CudaBackend::ComputeOutputs(const ForwardInput& in, ForwardOutput* out) {
  const ModelConfig& c = weights_.config;
  const int r = static_cast<int>(in.outputs.size());
  const int dim = c.hidden_size, rows = weights_.output_rows;
  cudaStream_t s = stream_.get();
  RETURN_IF_ERROR(RmsNorm(x_.as<float>(), weights_.final_norm.as<float>(), d_out_index_, r, dim, c.rms_norm_eps,
                          xn_.get(), weights_.dtype, s));
  RETURN_IF_ERROR(Gemm(cublas_, xn_.get(), weights_.output_projection(), weights_.dtype, logits_.as<float>(), r, rows,
                       dim, 0.0f));
  RETURN_IF_ERROR(sampler_.Sample(logits_.as<float>(), rows, in.outputs, tokens_.as<int32_t>(), s));
  host_tokens_.resize(r);
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_tokens_.data(), tokens_.get(), r * 4, cudaMemcpyDeviceToHost, s));
  if (in.return_logits) {
    out->logits.resize(static_cast<size_t>(r) * rows);
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out->logits.data(), logits_.get(), out->logits.size() * 4,
                                         cudaMemcpyDeviceToHost, s));
  }
  if (in.return_hidden) {
    // fp32 copy of the final-norm rows (xn_ holds them in the GEMM dtype).
    RETURN_IF_ERROR(RmsNorm(x_.as<float>(), weights_.final_norm.as<float>(), d_out_index_, r, dim, c.rms_norm_eps,
                            hidden_.get(), DType::kF32, s));
    out->hidden.resize(static_cast<size_t>(r) * dim);
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out->hidden.data(), hidden_.get(), out->hidden.size() * 4,
                                         cudaMemcpyDeviceToHost, s));
  }
  return absl::OkStatus();
}

}  // namespace llama::cuda
