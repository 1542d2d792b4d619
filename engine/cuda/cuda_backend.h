// CudaBackend: the Llama forward pass on one GPU over a ragged batch with a paged KV cache on the device.
//
// Per layer: RMSNorm (→ dtype) → one fused QKV GEMM over all batch tokens (fp32 out) → RoPE → K/V written into
// their paged slots → paged causal GQA attention (→ dtype) → o_proj GEMM accumulated into the fp32 residual →
// RMSNorm → fused gate/up GEMM → SwiGLU → down GEMM accumulated into the residual. Then the final RMSNorm and the
// output projection only for the output rows, and sampling on the device: only token ids (and logits/hidden when
// asked) come back. cuBLAS accumulates in fp32 for every dtype.
//
// Threading: Forward is called by one thread at a time (the engine thread). Every CUDA/cuBLAS call is checked: a
// failure fails the step with a Status and the backend is not used further by the caller's choice, never aborts.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/cuda/cuda_backend_factory.h"
#include "engine/cuda/cuda_stream.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/kv_cache_pool.h"
#include "engine/cuda/sampling.cuh"
#include "engine/model/weights.h"

namespace llama::cuda {

class CudaBackend : public Backend {
 public:
  // From host weights (tests, checkpoints already loaded); options.model_dir and dummy_weights are ignored.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const ModelWeights& weights,
                                                             const CudaBackendOptions& options);
  // From options.model_dir or options.dummy_weights.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);

  const ModelConfig& config() const override { return weights_.config; }
  const KvCacheSpec& kv_cache() const override { return kv_.spec(); }
  std::string name() const override;
  absl::Status Forward(const ForwardInput& input, ForwardOutput* output) override;

  DType dtype() const { return weights_.dtype; }
  int64_t weight_bytes() const { return weights_.bytes(); }
  cudaStream_t stream() const { return stream_.get(); }

 private:
  CudaBackend() = default;
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Finish(std::unique_ptr<CudaBackend> backend,
                                                             const CudaBackendOptions& options);

  absl::Status Reserve(int num_tokens, int num_outputs);
  absl::Status UploadBatch(const ForwardInput& input);
  absl::Status AttentionBlock(int layer, const ForwardInput& input);
  absl::Status FfnBlock(int layer, int num_tokens);
  absl::Status ComputeOutputs(const ForwardInput& input, ForwardOutput* output);

  int qkv_dim() const;

  CudaStream stream_;
  CublasHandle cublas_;
  DeviceModelWeights weights_;
  KvCachePool kv_;
  DeviceSampler sampler_;

  // Batch metadata, one upload per step: token_ids, positions, slot_mapping, token_seq [num_tokens] each,
  // output token indices [num_outputs], block_tables [num_seqs, max_blocks_per_seq].
  std::vector<int32_t> host_meta_;
  DeviceBuffer meta_;
  const int32_t* d_token_ids_ = nullptr;
  const int32_t* d_positions_ = nullptr;
  const int32_t* d_slots_ = nullptr;
  const int32_t* d_token_seq_ = nullptr;
  const int32_t* d_out_index_ = nullptr;
  const int32_t* d_block_tables_ = nullptr;

  // Per-step activations, grown on demand (n = num_tokens, r = num_outputs).
  DeviceBuffer x_;       // [n, dim] fp32 residual stream
  DeviceBuffer xn_;      // [n, dim] dtype: RMSNorm output, input of the QKV / gate-up / lm_head GEMMs
  DeviceBuffer qkv_;     // [n, (n_heads + 2 n_kv_heads) * head_dim] fp32
  DeviceBuffer attn_;    // [n, n_heads * head_dim] dtype
  DeviceBuffer gate_up_; // [n, 2 * intermediate] fp32
  DeviceBuffer act_;     // [n, intermediate] dtype
  DeviceBuffer logits_;  // [r, output_rows] fp32
  DeviceBuffer hidden_;  // [r, dim] fp32 (return_hidden)
  DeviceBuffer tokens_;  // [r] int32
  std::vector<int32_t> host_tokens_;
};

}  // namespace llama::cuda
