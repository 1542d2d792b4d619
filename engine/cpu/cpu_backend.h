// CpuBackend: the Llama forward pass on the CPU in fp32, over a ragged batch, with a paged KV cache of fp32, f16 or
// bf16 elements (CpuBackendOptions::kv_dtype; kv_dtype.h: narrow storage, fp32 arithmetic).
//
// The readable reference backend and the default without a GPU. Per layer: RMSNorm → Q/K/V projections of all
// batch tokens at once → RoPE → K/V written to their slots → paged causal GQA attention per sequence → o_proj +
// residual → RMSNorm → SwiGLU FFN + residual; then the final RMSNorm and the output projection only for the output
// rows, and sampling. Each stage is one parallel region of the thread pool (rows or heads split across threads).
//
// Threading: Forward is called by one thread at a time (the engine thread); it fans out to its own pool.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/cpu/huge_page_buffer.h"
#include "engine/cpu/kv_dtype.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"
#include "engine/model/weights.h"

namespace llama {

struct CpuBackendOptions {
  int num_threads = 0;                       // 0: std::thread::hardware_concurrency()
  int block_size = kDefaultBlockSize;         // tokens per KV block
  int num_blocks = 0;                        // KV blocks in the pool; 0: as many as kv_cache_bytes allows
  int64_t kv_cache_bytes = int64_t{256} << 20;  // budget used when num_blocks == 0
  // Element type of the KV cache (--kv_dtype). f16/bf16 halve bytes per token, so the same kv_cache_bytes holds
  // twice the blocks, and attention reads half the bytes per key; K/V are rounded once when written.
  KvDtype kv_dtype = KvDtype::kF32;
  absl::Status Validate() const;
};

class CpuBackend : public Backend {
 public:
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(ModelWeights weights, const CpuBackendOptions& options);

  const ModelConfig& config() const override { return weights_.config; }
  const KvCacheSpec& kv_cache() const override { return kv_; }
  std::string name() const override { return "cpu"; }
  int num_threads() const { return pool_.num_threads(); }
  KvDtype kv_dtype() const { return kv_dtype_; }
  // The instruction set its kernels run on (engine/cpu/cpu_isa.h; LLAMA_CPU_ISA forces one).
  static const char* isa_name();

  // For reward models (weights with a score head) the "logits" are the score head's outputs [num_labels] and
  // rows cannot be sampled.
  absl::Status Forward(const ForwardInput& input, ForwardOutput* output) override;

 private:
  // Each matrix's packed copy in the arena (packed_matmul.h layout; shapes are those of the unpacked matrix).
  struct LayerMatrices {
    const float* wq;      // [n_heads * head_dim, dim]
    const float* wk;      // [n_kv_heads * head_dim, dim]
    const float* wv;      // [n_kv_heads * head_dim, dim]
    const float* wo;      // [dim, n_heads * head_dim]
    const float* w_gate;  // [intermediate, dim]
    const float* w_up;    // [intermediate, dim]
    const float* w_down;  // [dim, intermediate]
  };

  CpuBackend(ModelWeights weights, HugePageBuffer arena, const KvCacheSpec& kv, KvDtype kv_dtype, int num_threads);
  void PlaceMatrices();

  void ApplyBlockCopies(const ForwardInput& input);
  void PrepareBatch(const ForwardInput& input);
  void ProjectQkv(int layer, int n);
  void AttentionBlock(int layer, const ForwardInput& input);
  void FfnBlock(int layer, int n);
  void ComputeOutputs(const ForwardInput& input, ForwardOutput* output);

  ModelWeights weights_;     // config, norms, score bias (the matrices are moved into matrices_)
  HugePageBuffer matrices_;  // every matrix packed, layer by layer, then embed_tokens, lm_head or score
  std::vector<LayerMatrices> layer_matrices_;
  const float* embed_tokens_ = nullptr;  // [vocab, dim]
  bool reward_model_ = false;            // weights had a score head
  const float* output_proj_ = nullptr;   // [vocab, dim] (lm_head or the tied embeddings), or score [num_labels, dim]
  KvCacheSpec kv_;
  KvDtype kv_dtype_;  // kv_.dtype_bytes == KvDtypeBytes(kv_dtype_)
  ThreadPool pool_;
  RopeTable rope_;
  // [layers][num_blocks, n_kv_heads, block_size, head_dim] elements of kv_dtype_, as bytes.
  std::vector<std::vector<uint8_t>> k_cache_;
  std::vector<std::vector<uint8_t>> v_cache_;  // same

  // Per-step scratch, grown on demand (num_tokens = n).
  std::vector<float> x_;                   // [n, dim] residual stream
  std::vector<float> xnorm_;               // [n, dim] RMSNorm output
  std::vector<float> q_;                   // [n, n_heads * head_dim]
  std::vector<float> k_;                   // [n, n_kv_heads * head_dim]
  std::vector<float> v_;                   // [n, n_kv_heads * head_dim]
  std::vector<float> attn_;                // [n, n_heads * head_dim]
  std::vector<float> gate_;                // [n, intermediate]
  std::vector<float> up_;                  // [n, intermediate]
  std::vector<std::vector<float>> scores_; // [threads][max_position_embeddings]
  std::vector<int32_t> token_seq_;         // [n] sequence index of each token
  std::vector<float> out_hidden_;          // [num_outputs, dim] final-norm rows
  std::vector<float> out_logits_;          // [num_outputs, vocab (or num_labels)]
};

}  // namespace llama
