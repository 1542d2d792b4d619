// CpuBackend: the Llama forward pass on the CPU in fp32 arithmetic, over a ragged batch. The matrices are stored as
// f32, bf16 or q8_0 (CpuBackendOptions::weights_dtype, weight_matrix.h); the paged KV cache holds fp32, f16 or bf16
// elements (CpuBackendOptions::kv_dtype; kv_dtype.h: narrow storage, fp32 arithmetic).
//
// The readable reference backend and the default without a GPU. Per layer: RMSNorm → Q/K/V projections of all
// batch tokens at once → RoPE → K/V written to their slots → paged causal GQA attention per sequence → o_proj +
// residual → RMSNorm → SwiGLU FFN + residual; then the final RMSNorm and the output projection only for the output
// rows, and sampling. Each stage is one parallel region of the thread pool (rows or heads split across threads).
//
// Loading: Create(WeightSource) reads each matrix 64 rows (one panel) at a time into a small fp32 scratch and packs
// it straight into the arena in the storage type (panels in parallel over the pool), releasing each tensor from the
// source when done, so no full fp32 copy of the model ever exists. The bytes it will need (arena + KV cache) are
// planned first: more than the machine's memory, or an allocation that fails, is RESOURCE_EXHAUSTED naming both.
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
#include "engine/cpu/weight_matrix.h"
#include "engine/model/weight_source.h"
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
  WeightsDtype weights_dtype = WeightsDtype::kF32;  // storage type of every matrix (norms stay fp32)
  // The most bytes the backend may plan for (packed weights + KV cache); 0: MemTotal of /proc/meminfo. Tests set
  // it to exercise the RESOURCE_EXHAUSTED path.
  int64_t memory_limit_bytes = 0;
  absl::Status Validate() const;
};

// MemTotal of /proc/meminfo in bytes (0 when it cannot be read: no limit is then applied).
int64_t PhysicalMemoryBytes();

class CpuBackend : public Backend {
 public:
  // Reads every tensor of `source` (which need only live during the call).
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(const WeightSource& source,
                                                            const CpuBackendOptions& options);
  // The same over host weights (InMemoryWeightSource that frees each tensor once packed).
  static absl::StatusOr<std::unique_ptr<CpuBackend>> Create(ModelWeights weights, const CpuBackendOptions& options);

  const ModelConfig& config() const override { return weights_.config; }
  const KvCacheSpec& kv_cache() const override { return kv_; }
  std::string name() const override { return "cpu"; }
  int num_threads() const { return pool_.num_threads(); }
  KvDtype kv_dtype() const { return kv_dtype_; }
  // The instruction set its kernels run on (engine/cpu/cpu_isa.h; LLAMA_CPU_ISA forces one).
  static const char* isa_name();
  WeightsDtype weights_dtype() const { return weights_dtype_; }
  // Bytes of the packed matrices (the arena).
  int64_t weight_bytes() const { return static_cast<int64_t>(weight_bytes_); }

  // For reward models (weights with a score head) the "logits" are the score head's outputs [num_labels] and
  // rows cannot be sampled.
  absl::Status Forward(const ForwardInput& input, ForwardOutput* output) override;

 private:
  // Each matrix's packed copy in the arena (weight_matrix.h; shapes are those of the unpacked matrix).
  struct LayerMatrices {
    WeightMatrix wq;      // [n_heads * head_dim, dim]
    WeightMatrix wk;      // [n_kv_heads * head_dim, dim]
    WeightMatrix wv;      // [n_kv_heads * head_dim, dim]
    WeightMatrix wo;      // [dim, n_heads * head_dim]
    WeightMatrix w_gate;  // [intermediate, dim]
    WeightMatrix w_up;    // [intermediate, dim]
    WeightMatrix w_down;  // [dim, intermediate]
  };
  struct MatrixPlan;

  CpuBackend(ModelWeights norms, HugePageBuffer arena, size_t weight_bytes, WeightsDtype dtype, const KvCacheSpec& kv,
             KvDtype kv_dtype, int num_threads);
  absl::Status LoadMatrices(const WeightSource& source, const std::vector<MatrixPlan>& plan);
  // xq_ = the activations x [n, cols] prepared for the matrices' type (q8_0: quantized); returns xq_.
  const uint8_t* PrepareInput(const float* x, int n, int cols);

  void ApplyBlockCopies(const ForwardInput& input);
  void PrepareBatch(const ForwardInput& input);
  void ProjectQkv(int layer, int n);
  void AttentionBlock(int layer, const ForwardInput& input);
  void FfnBlock(int layer, int n);
  void ComputeOutputs(const ForwardInput& input, ForwardOutput* output);

  ModelWeights weights_;     // config, norms, score bias (the matrices live in matrices_ only)
  HugePageBuffer matrices_;  // every matrix packed, layer by layer, then embed_tokens, lm_head or score
  size_t weight_bytes_ = 0;  // bytes of matrices_ in use
  WeightsDtype weights_dtype_ = WeightsDtype::kF32;
  std::vector<LayerMatrices> layer_matrices_;
  WeightMatrix embed_tokens_;  // [vocab, dim]
  bool reward_model_ = false;  // weights had a score head
  WeightMatrix output_proj_;   // [vocab, dim] (lm_head or the tied embeddings), or score [num_labels, dim]
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
  std::vector<uint8_t> xq_;                // one matmul input prepared for the weights' type (q8_0 only)
};

}  // namespace llama
