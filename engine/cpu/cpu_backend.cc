#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_isa.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/paged_attention.h"

namespace llama {
namespace {

// Rows of a matrix are split across threads in whole 64-row panels (packed_matmul.h): two threads reading parts
// of one panel's 256-byte k-rows pull in each other's cache lines (adjacent-line prefetch), which cost single-stream
// decode ~30% with 16-row chunks.
constexpr int kRowGrain = kPanelRows;

// From this many batch tokens on, attention runs as a region of its own after the projections (see AttentionBlock).
constexpr int kSplitAttentionTokens = 8;

template <typename T>
void GrowTo(std::vector<T>* v, size_t size) {
  if (v->size() < size) v->resize(size);
}

absl::Status CheckSize(const std::vector<float>& v, size_t expected, const std::string& name) {
  if (v.size() == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("weight ", name, " has ", v.size(), " values, expected ", expected));
}

// Every tensor the forward reads has the size the config implies (weights may come from tests, not the loader).
absl::Status CheckWeightShapes(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  const size_t dim = c.hidden_size, hidden = c.intermediate_size, hd = c.head_dim();
  const size_t q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  if (static_cast<int>(w.layers.size()) != c.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights have ", w.layers.size(), " layers, config says ", c.num_hidden_layers));
  }
  RETURN_IF_ERROR(CheckSize(w.embed_tokens, c.vocab_size * dim, "embed_tokens"));
  RETURN_IF_ERROR(CheckSize(w.final_norm, dim, "norm"));
  if (w.is_reward_model()) {
    RETURN_IF_ERROR(CheckSize(w.score, c.num_labels * dim, "score"));
  } else if (!w.lm_head.empty()) {
    RETURN_IF_ERROR(CheckSize(w.lm_head, c.vocab_size * dim, "lm_head"));
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const std::string p = absl::StrCat("layer ", l, " ");
    RETURN_IF_ERROR(CheckSize(lw.attn_norm, dim, p + "input_layernorm"));
    RETURN_IF_ERROR(CheckSize(lw.wq, q_rows * dim, p + "q_proj"));
    RETURN_IF_ERROR(CheckSize(lw.wk, kv_rows * dim, p + "k_proj"));
    RETURN_IF_ERROR(CheckSize(lw.wv, kv_rows * dim, p + "v_proj"));
    RETURN_IF_ERROR(CheckSize(lw.wo, dim * q_rows, p + "o_proj"));
    RETURN_IF_ERROR(CheckSize(lw.ffn_norm, dim, p + "post_attention_layernorm"));
    RETURN_IF_ERROR(CheckSize(lw.w_gate, hidden * dim, p + "gate_proj"));
    RETURN_IF_ERROR(CheckSize(lw.w_up, hidden * dim, p + "up_proj"));
    RETURN_IF_ERROR(CheckSize(lw.w_down, dim * hidden, p + "down_proj"));
  }
  return absl::OkStatus();
}

// Matrices start on 64-byte boundaries in the arena (whole cache lines; the f32 kernel's panels are 64-byte
// vectors).
constexpr size_t kMatrixAlign = 64;

size_t AlignUp(size_t n) { return (n + kMatrixAlign - 1) / kMatrixAlign * kMatrixAlign; }

// Bytes as GiB for messages.
std::string Gib(int64_t bytes) { return absl::StrCat(absl::SixDigits(static_cast<double>(bytes) / (1 << 30)), " GiB"); }

}  // namespace

// One matrix to load: the source tensor, its shape, where it goes in the arena.
struct CpuBackend::MatrixPlan {
  std::string name;
  int rows = 0, cols = 0;
  size_t offset = 0;  // bytes into the arena
};

int64_t PhysicalMemoryBytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::istringstream in(line);
    std::string key;
    int64_t kib = 0;
    if (in >> key >> kib && key == "MemTotal:") return kib * 1024;
  }
  return 0;
}

absl::Status CpuBackendOptions::Validate() const {
  if (num_threads < 0) return absl::InvalidArgumentError("num_threads must be >= 0");
  if (block_size <= 0) return absl::InvalidArgumentError("block_size must be > 0");
  if (num_blocks < 0) return absl::InvalidArgumentError("num_blocks must be >= 0");
  if (num_blocks == 0 && kv_cache_bytes <= 0) {
    return absl::InvalidArgumentError("kv_cache_bytes must be > 0 when num_blocks is 0");
  }
  if (memory_limit_bytes < 0) return absl::InvalidArgumentError("memory_limit_bytes must be >= 0");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(ModelWeights weights,
                                                               const CpuBackendOptions& options) {
  // The ModelWeights checks first: their messages name ModelWeights' fields as tests and callers know them.
  RETURN_IF_ERROR(weights.config.Validate());
  RETURN_IF_ERROR(CheckWeightShapes(weights));
  const InMemoryWeightSource source(std::move(weights));
  return Create(source, options);
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const WeightSource& source,
                                                               const CpuBackendOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  const ModelConfig& c = source.config();
  RETURN_IF_ERROR(c.Validate());
  RETURN_IF_ERROR(CheckWeightShapes(source));
  ASSIGN_OR_RETURN(const CpuIsa requested, RequestedCpuIsa());
  if (ActiveCpuIsa() != requested) {
    return absl::FailedPreconditionError(absl::StrCat("LLAMA_CPU_ISA asks for ", CpuIsaName(requested),
                                                      " but this process already runs ", CpuIsaName(ActiveCpuIsa())));
  }
  const WeightsDtype dtype = options.weights_dtype;
  KvCacheSpec kv;
  kv.block_size = options.block_size;
  kv.num_layers = c.num_hidden_layers;
  kv.num_kv_heads = c.num_key_value_heads;
  kv.head_dim = c.head_dim();
  kv.dtype_bytes = KvDtypeBytes(options.kv_dtype);
  kv.num_blocks = options.num_blocks > 0 ? options.num_blocks
                                         : static_cast<int>(options.kv_cache_bytes / kv.bytes_per_block());
  if (kv.num_blocks <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv_cache_bytes ", options.kv_cache_bytes,
                                                   " holds no block of ", kv.bytes_per_block(), " bytes"));
  }
  if (options.kv_dtype != KvDtype::kF32 && kv.head_dim > kMaxHalfKvHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat("kv_dtype ", KvDtypeName(options.kv_dtype),
                                                   " supports head_dim <= ", kMaxHalfKvHeadDim, ", the model has ",
                                                   kv.head_dim));
  }

  // The plan: every matrix in arena order (layers, embed_tokens, then lm_head or score), at 64-byte offsets.
  const int dim = c.hidden_size, hidden = c.intermediate_size, hd = c.head_dim();
  const int q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  std::vector<MatrixPlan> plan;
  size_t weight_bytes = 0;
  auto add = [&](std::string name, int rows, int cols) -> absl::Status {
    RETURN_IF_ERROR(CheckStorable(dtype, name, rows, cols));
    plan.push_back({std::move(name), rows, cols, weight_bytes});
    weight_bytes += AlignUp(WeightMatrixBytes(dtype, rows, cols));
    return absl::OkStatus();
  };
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    RETURN_IF_ERROR(add(LayerTensorName(l, "self_attn.q_proj.weight"), q_rows, dim));
    RETURN_IF_ERROR(add(LayerTensorName(l, "self_attn.k_proj.weight"), kv_rows, dim));
    RETURN_IF_ERROR(add(LayerTensorName(l, "self_attn.v_proj.weight"), kv_rows, dim));
    RETURN_IF_ERROR(add(LayerTensorName(l, "self_attn.o_proj.weight"), dim, q_rows));
    RETURN_IF_ERROR(add(LayerTensorName(l, "mlp.gate_proj.weight"), hidden, dim));
    RETURN_IF_ERROR(add(LayerTensorName(l, "mlp.up_proj.weight"), hidden, dim));
    RETURN_IF_ERROR(add(LayerTensorName(l, "mlp.down_proj.weight"), dim, hidden));
  }
  RETURN_IF_ERROR(add("model.embed_tokens.weight", c.vocab_size, dim));
  const bool reward = HasScoreHead(source);
  if (reward) {
    RETURN_IF_ERROR(add("score.weight", c.num_labels, dim));
  } else if (HasLmHead(source)) {
    RETURN_IF_ERROR(add("lm_head.weight", c.vocab_size, dim));
  }

  // Bytes needed before anything is allocated: a model that cannot fit is refused up front, not by the OOM killer
  // halfway through the load (the arena's pages are only touched as panels are packed).
  const int64_t needed = static_cast<int64_t>(weight_bytes) + kv.total_bytes();
  const int64_t available = options.memory_limit_bytes > 0 ? options.memory_limit_bytes : PhysicalMemoryBytes();
  const std::string what = absl::StrCat(needed, " bytes (", Gib(needed), ": ", weight_bytes, " of ",
                                        WeightsDtypeName(dtype), " weights + ", kv.total_bytes(), " of KV cache)");
  if (available > 0 && needed > available) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cpu backend needs ", what, " but only ", available, " bytes are available (", Gib(available),
                     options.memory_limit_bytes > 0 ? ": the configured limit)" : " of physical memory)"));
  }
  HugePageBuffer arena((weight_bytes + sizeof(float) - 1) / sizeof(float));
  if (arena.data() == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("cpu backend: cannot allocate ", weight_bytes,
                                                     " bytes for the packed weights (", what, " in all)"));
  }
  ModelWeights norms;  // config, norms and score bias (fp32 vectors)
  norms.config = c;
  std::unique_ptr<CpuBackend> backend;
  try {
    norms.layers.resize(c.num_hidden_layers);
    auto read_vector = [&](const std::string& name, std::vector<float>* v) -> absl::Status {
      ASSIGN_OR_RETURN(TensorInfo info, source.Info(name));
      v->resize(info.num_elements());
      RETURN_IF_ERROR(source.ReadRows(name, 0, info.rows(), v->data()));
      source.Release(name);
      return absl::OkStatus();
    };
    for (int l = 0; l < c.num_hidden_layers; ++l) {
      RETURN_IF_ERROR(read_vector(LayerTensorName(l, "input_layernorm.weight"), &norms.layers[l].attn_norm));
      RETURN_IF_ERROR(read_vector(LayerTensorName(l, "post_attention_layernorm.weight"), &norms.layers[l].ffn_norm));
    }
    RETURN_IF_ERROR(read_vector("model.norm.weight", &norms.final_norm));
    if (reward && source.Info("score.bias").ok()) RETURN_IF_ERROR(read_vector("score.bias", &norms.score_bias));
    backend.reset(new CpuBackend(std::move(norms), std::move(arena), weight_bytes, dtype, kv, options.kv_dtype,
                                options.num_threads));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat("cpu backend: out of memory allocating the KV cache or norms (",
                                                     what, " planned)"));
  }
  backend->reward_model_ = reward;
  RETURN_IF_ERROR(backend->LoadMatrices(source, plan));
  std::fprintf(stderr, "cpu backend: %s kernels, %s weights (%.1f MiB), %s KV cache %.1f MiB\n",
               CpuIsaName(ActiveCpuIsa()), WeightsDtypeName(dtype), weight_bytes / 1048576.0,
               KvDtypeName(options.kv_dtype), kv.total_bytes() / 1048576.0);
  return backend;
}

const char* CpuBackend::isa_name() { return CpuIsaName(ActiveCpuIsa()); }

CpuBackend::CpuBackend(ModelWeights norms, HugePageBuffer arena, size_t weight_bytes, WeightsDtype dtype,
                       const KvCacheSpec& kv, KvDtype kv_dtype, int num_threads)
    : weights_(std::move(norms)),
      matrices_(std::move(arena)),
      weight_bytes_(weight_bytes),
      weights_dtype_(dtype),
      kv_(kv),
      kv_dtype_(kv_dtype),
      pool_(num_threads) {
  const ModelConfig& c = weights_.config;
  rope_ = BuildRopeTable(c.max_position_embeddings, c.head_dim(), c.rope_theta, c.rope_scaling_factor);
  const size_t per_layer_bytes =
      static_cast<size_t>(kv_.num_blocks) * kv_.num_kv_heads * kv_.block_size * kv_.head_dim * kv_.dtype_bytes;
  k_cache_.assign(c.num_hidden_layers, std::vector<uint8_t>(per_layer_bytes, 0));
  v_cache_.assign(c.num_hidden_layers, std::vector<uint8_t>(per_layer_bytes, 0));
  scores_.assign(pool_.num_threads(), std::vector<float>(c.max_position_embeddings));
}

// Reads and packs every matrix of the plan, panel by panel: the pool's threads take panels of one tensor at a time,
// each reading its 64 rows into its own fp32 scratch, then the tensor is released from the source.
absl::Status CpuBackend::LoadMatrices(const WeightSource& source, const std::vector<MatrixPlan>& plan) {
  const ModelConfig& c = weights_.config;
  uint8_t* arena = reinterpret_cast<uint8_t*>(matrices_.data());
  int max_cols = 0;
  for (const MatrixPlan& m : plan) max_cols = std::max(max_cols, m.cols);
  std::vector<std::vector<float>> scratch(pool_.num_threads(),
                                          std::vector<float>(static_cast<size_t>(kPanelRows) * max_cols));
  std::vector<absl::Status> errors(pool_.num_threads());
  std::vector<WeightMatrix> placed;
  for (const MatrixPlan& m : plan) {
    uint8_t* dst = arena + m.offset;
    const int panels = (m.rows + kPanelRows - 1) / kPanelRows;
    pool_.ParallelFor(panels, [&](int p, int tid) {
      if (!errors[tid].ok()) return;
      const int r0 = p * kPanelRows, r1 = std::min(m.rows, r0 + kPanelRows);
      absl::Status read = source.ReadRows(m.name, r0, r1, scratch[tid].data());
      if (!read.ok()) {
        errors[tid] = absl::Status(read.code(), absl::StrCat("reading ", m.name, ": ", read.message()));
        return;
      }
      PackWeightPanel(weights_dtype_, scratch[tid].data(), r1 - r0, m.rows, m.cols, p, dst);
    });
    for (const absl::Status& e : errors) RETURN_IF_ERROR(e);
    source.Release(m.name);
    placed.push_back({weights_dtype_, dst, m.rows, m.cols});
  }
  size_t i = 0;
  for (int l = 0; l < c.num_hidden_layers; ++l, i += 7) {
    layer_matrices_.push_back({placed[i], placed[i + 1], placed[i + 2], placed[i + 3], placed[i + 4], placed[i + 5],
                               placed[i + 6]});
  }
  embed_tokens_ = placed[i++];
  output_proj_ = i < placed.size() ? placed[i] : embed_tokens_;
  return absl::OkStatus();
}

const uint8_t* CpuBackend::PrepareInput(const float* x, int n, int cols) {
  const size_t bytes = ActivationScratchBytes(weights_dtype_, n, cols);
  if (bytes == 0) return nullptr;
  GrowTo(&xq_, bytes);
  PrepareActivations(weights_dtype_, x, n, cols, xq_.data());
  return xq_.data();
}

void CpuBackend::ApplyBlockCopies(const ForwardInput& input) {
  // One layer's K (or V) bytes of a block: the copy moves elements of kv_dtype_ as they are stored.
  const size_t block_bytes =
      static_cast<size_t>(kv_.num_kv_heads) * kv_.block_size * kv_.head_dim * kv_.dtype_bytes;
  for (const auto& [src, dst] : input.block_copies) {
    for (int l = 0; l < kv_.num_layers; ++l) {
      std::memcpy(k_cache_[l].data() + dst * block_bytes, k_cache_[l].data() + src * block_bytes, block_bytes);
      std::memcpy(v_cache_[l].data() + dst * block_bytes, v_cache_[l].data() + src * block_bytes, block_bytes);
    }
  }
}

void CpuBackend::PrepareBatch(const ForwardInput& input) {
  const ModelConfig& c = weights_.config;
  const size_t n = input.num_tokens();
  const size_t dim = c.hidden_size, hd = c.head_dim();
  GrowTo(&x_, n * dim);
  GrowTo(&xnorm_, n * dim);
  GrowTo(&q_, n * c.num_attention_heads * hd);
  GrowTo(&k_, n * c.num_key_value_heads * hd);
  GrowTo(&v_, n * c.num_key_value_heads * hd);
  GrowTo(&attn_, n * c.num_attention_heads * hd);
  GrowTo(&gate_, n * c.intermediate_size);
  GrowTo(&up_, n * c.intermediate_size);
  token_seq_.resize(n);
  for (int s = 0; s < input.num_seqs(); ++s) {
    for (int i = input.query_start[s]; i < input.query_start[s + 1]; ++i) token_seq_[i] = s;
  }
  // Embedding lookup: x[t] = embed_tokens[token_ids[t]].
  for (size_t t = 0; t < n; ++t) {
    UnpackWeightRow(embed_tokens_, input.token_ids[t], x_.data() + t * dim);
  }
}

// q_, k_, v_ = xnorm_ · Wq/Wk/Wvᵀ in one region whose tasks are whole-panel row chunks of the three matrices
// (splitting by head instead would share 64-row panels between threads whenever head_dim is not a multiple of 64).
void CpuBackend::ProjectQkv(int layer, int n) {
  const ModelConfig& c = weights_.config;
  const LayerMatrices& m = layer_matrices_[layer];
  const int dim = c.hidden_size, hd = c.head_dim();
  const int q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  const int64_t q_chunk = pool_.ChunkSize(q_rows, kRowGrain), kv_chunk = pool_.ChunkSize(kv_rows, kRowGrain);
  const int q_tasks = static_cast<int>((q_rows + q_chunk - 1) / q_chunk);
  const int kv_tasks = static_cast<int>((kv_rows + kv_chunk - 1) / kv_chunk);
  const uint8_t* xq = PrepareInput(xnorm_.data(), n, dim);
  pool_.ParallelFor(q_tasks + 2 * kv_tasks, [&](int task, int) {
    const float* xn = xnorm_.data();
    if (task < q_tasks) {
      const int r0 = static_cast<int>(task * q_chunk);
      WeightMatMulRows(m.wq, xn, xq, q_.data(), n, r0, std::min<int>(q_rows, r0 + q_chunk), false);
      return;
    }
    task -= q_tasks;
    const bool value = task >= kv_tasks;
    const int r0 = static_cast<int>((value ? task - kv_tasks : task) * kv_chunk);
    WeightMatMulRows(value ? m.wv : m.wk, xn, xq, value ? v_.data() : k_.data(), n, r0,
                     std::min<int>(kv_rows, r0 + kv_chunk), false);
  });
}

// RMSNorm and the Q/K/V projections (ProjectQkv), then one region with a task per KV head g: RoPE of g's query
// heads and K head, the KV write, then attention of g's query heads. Attention of group g needs only K/V head g,
// cached earlier or written by this task, so no barrier separates the KV write and attention (batches of
// kSplitAttentionTokens or more run attention as a region of its own instead). Then o_proj + residual, split by
// output row.
void CpuBackend::AttentionBlock(int layer, const ForwardInput& input) {
  const ModelConfig& c = weights_.config;
  const LayerWeights& w = weights_.layers[layer];  // norms
  const LayerMatrices& m = layer_matrices_[layer];
  const int n = input.num_tokens(), dim = c.hidden_size, hd = c.head_dim();
  const int nh = c.num_attention_heads, nkv = c.num_key_value_heads, group = c.group_size();
  RmsNorm(x_.data(), w.attn_norm.data(), n, dim, c.rms_norm_eps, xnorm_.data());
  ProjectQkv(layer, n);
  PagedAttentionArgs args;
  args.q = q_.data();
  args.k_cache = k_cache_[layer].data();
  args.v_cache = v_cache_[layer].data();
  args.block_tables = input.block_tables.data();
  args.token_seq = token_seq_.data();
  args.positions = input.positions.data();
  args.out = attn_.data();
  args.num_tokens = n;
  args.num_heads = nh;
  args.num_kv_heads = nkv;
  args.head_dim = hd;
  args.block_size = kv_.block_size;
  args.max_blocks_per_seq = input.max_blocks_per_seq;
  args.kv_dtype = kv_dtype_;
  pool_.ParallelFor(nkv, [&](int g, int tid) {
    const int h0 = g * group, h1 = (g + 1) * group;
    ApplyRope(q_.data(), input.positions.data(), n, nh, h0, h1, rope_);
    ApplyRope(k_.data(), input.positions.data(), n, nkv, g, g + 1, rope_);
    WriteKvCache(k_.data(), v_.data(), input.slot_mapping.data(), n, nkv, hd, kv_.block_size, g, g + 1,
                 k_cache_[layer].data(), v_cache_[layer].data(), kv_dtype_);
    if (n >= kSplitAttentionTokens) return;
    for (int t = 0; t < n; ++t) {
      const int64_t item = static_cast<int64_t>(t) * nh;
      PagedAttention(args, item + h0, item + h1, scores_[tid].data());
    }
  });
  if (n >= kSplitAttentionTokens) {
    // Large batches: attention in its own region, (token, head) items in small chunks, since the cost of an item
    // grows with its position and num_kv_heads tasks balance poorly over the threads.
    pool_.ParallelForRange(static_cast<int64_t>(n) * nh, 1, [&](int64_t i0, int64_t i1, int tid) {
      PagedAttention(args, i0, i1, scores_[tid].data());
    });
  }
  const uint8_t* attn_q = PrepareInput(attn_.data(), n, nh * hd);
  pool_.ParallelForRange(dim, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    WeightMatMulRows(m.wo, attn_.data(), attn_q, x_.data(), n, r0, r1, true);
  });
}

// RMSNorm, then gate and up projections → silu(gate) * up (one region, split by FFN row), then down + residual.
void CpuBackend::FfnBlock(int layer, int n) {
  const ModelConfig& c = weights_.config;
  const LayerWeights& w = weights_.layers[layer];  // norms
  const LayerMatrices& m = layer_matrices_[layer];
  const int dim = c.hidden_size, hidden = c.intermediate_size;
  RmsNorm(x_.data(), w.ffn_norm.data(), n, dim, c.rms_norm_eps, xnorm_.data());
  const uint8_t* xq = PrepareInput(xnorm_.data(), n, dim);
  pool_.ParallelForRange(hidden, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    WeightMatMulRows(m.w_gate, xnorm_.data(), xq, gate_.data(), n, r0, r1, false);
    WeightMatMulRows(m.w_up, xnorm_.data(), xq, up_.data(), n, r0, r1, false);
    for (int t = 0; t < n; ++t) {
      float* g = gate_.data() + static_cast<int64_t>(t) * hidden;
      SiluMul(g + r0, up_.data() + static_cast<int64_t>(t) * hidden + r0, r1 - r0, g + r0);
    }
  });
  const uint8_t* gate_q = PrepareInput(gate_.data(), n, hidden);
  pool_.ParallelForRange(dim, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    WeightMatMulRows(m.w_down, gate_.data(), gate_q, x_.data(), n, r0, r1, true);
  });
}

// Final RMSNorm of the output rows, the output projection (vocab rows split across threads), then sampling.
void CpuBackend::ComputeOutputs(const ForwardInput& input, ForwardOutput* output) {
  const ModelConfig& c = weights_.config;
  const int dim = c.hidden_size;
  const int num_out = static_cast<int>(input.outputs.size());
  const bool reward = reward_model_;
  const int vocab = reward ? c.num_labels : c.vocab_size;
  GrowTo(&out_hidden_, static_cast<size_t>(num_out) * dim);
  GrowTo(&out_logits_, static_cast<size_t>(num_out) * vocab);
  for (int o = 0; o < num_out; ++o) {
    RmsNorm(x_.data() + static_cast<int64_t>(input.outputs[o].token_index) * dim, weights_.final_norm.data(), 1,
            dim, c.rms_norm_eps, out_hidden_.data() + static_cast<int64_t>(o) * dim);
  }
  const uint8_t* hidden_q = PrepareInput(out_hidden_.data(), num_out, dim);
  pool_.ParallelForRange(vocab, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    WeightMatMulRows(output_proj_, out_hidden_.data(), hidden_q, out_logits_.data(), num_out, r0, r1, false);
  });
  if (reward && !weights_.score_bias.empty()) {
    for (int o = 0; o < num_out; ++o)
      for (int j = 0; j < vocab; ++j) out_logits_[static_cast<size_t>(o) * vocab + j] += weights_.score_bias[j];
  }
  output->sampled_tokens.assign(num_out, -1);
  if (input.return_logits) {
    output->logits.assign(out_logits_.begin(), out_logits_.begin() + static_cast<size_t>(num_out) * vocab);
  } else {
    output->logits.clear();
  }
  if (input.return_hidden) {
    output->hidden.assign(out_hidden_.begin(), out_hidden_.begin() + static_cast<size_t>(num_out) * dim);
  } else {
    output->hidden.clear();
  }
  // Rows sample independently (a pure function of the row's logits, params, seed and step), so they run in
  // parallel: with sampling on, a 32000-wide softmax per row is ~20% of a batched decode step.
  pool_.ParallelFor(num_out, [&](int o, int) {
    const OutputRow& row = input.outputs[o];
    if (!row.sample) return;
    absl::Span<float> logits(out_logits_.data() + static_cast<size_t>(o) * vocab, vocab);
    output->sampled_tokens[o] = SampleToken(logits, row.params, row.seed, row.step, row.penalty_tokens);
  });
}

absl::Status CpuBackend::Forward(const ForwardInput& input, ForwardOutput* output) {
  RETURN_IF_ERROR(input.Validate(weights_.config, kv_));
  if (reward_model_) {
    for (const OutputRow& row : input.outputs) {
      if (row.sample) return absl::InvalidArgumentError("ForwardInput.outputs: a reward model cannot sample");
    }
  }
  ApplyBlockCopies(input);
  if (input.num_tokens() == 0) {
    *output = ForwardOutput();
    return absl::OkStatus();
  }
  PrepareBatch(input);
  for (int l = 0; l < weights_.config.num_hidden_layers; ++l) {
    AttentionBlock(l, input);
    FfnBlock(l, input.num_tokens());
  }
  ComputeOutputs(input, output);
  return absl::OkStatus();
}

}  // namespace llama
