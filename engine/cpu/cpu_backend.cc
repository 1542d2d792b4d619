#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
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

// Floats of every matrix packed (the arena PlaceMatrices fills): layers, embed_tokens, then lm_head or score.
size_t PackedWeightFloats(const ModelWeights& w) {
  const ModelConfig& c = w.config;
  const int dim = c.hidden_size, hidden = c.intermediate_size, hd = c.head_dim();
  const int q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  const size_t layer = PackedSize(q_rows, dim) + 2 * PackedSize(kv_rows, dim) + PackedSize(dim, q_rows) +
                       2 * PackedSize(hidden, dim) + PackedSize(dim, hidden);
  size_t total = layer * c.num_hidden_layers + PackedSize(c.vocab_size, dim);
  if (w.is_reward_model()) return total + PackedSize(c.num_labels, dim);
  return total + (w.lm_head.empty() ? 0 : PackedSize(c.vocab_size, dim));
}

}  // namespace

absl::Status CpuBackendOptions::Validate() const {
  if (num_threads < 0) return absl::InvalidArgumentError("num_threads must be >= 0");
  if (block_size <= 0) return absl::InvalidArgumentError("block_size must be > 0");
  if (num_blocks < 0) return absl::InvalidArgumentError("num_blocks must be >= 0");
  if (num_blocks == 0 && kv_cache_bytes <= 0) {
    return absl::InvalidArgumentError("kv_cache_bytes must be > 0 when num_blocks is 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(ModelWeights weights,
                                                               const CpuBackendOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  RETURN_IF_ERROR(weights.config.Validate());
  RETURN_IF_ERROR(CheckWeightShapes(weights));
  ASSIGN_OR_RETURN(const CpuIsa requested, RequestedCpuIsa());
  if (ActiveCpuIsa() != requested) {
    return absl::FailedPreconditionError(absl::StrCat("LLAMA_CPU_ISA asks for ", CpuIsaName(requested),
                                                      " but this process already runs ", CpuIsaName(ActiveCpuIsa())));
  }
  std::fprintf(stderr, "cpu backend: %s kernels\n", CpuIsaName(ActiveCpuIsa()));
  const ModelConfig& c = weights.config;
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
  const int num_threads = options.num_threads;
  HugePageBuffer arena(PackedWeightFloats(weights));
  if (arena.data() == nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", PackedWeightFloats(weights) * 4,
                                                     " bytes for the packed weights"));
  }
  return std::unique_ptr<CpuBackend>(new CpuBackend(std::move(weights), std::move(arena), kv, options.kv_dtype,
                                                  num_threads));
}

const char* CpuBackend::isa_name() { return CpuIsaName(ActiveCpuIsa()); }

CpuBackend::CpuBackend(ModelWeights weights, HugePageBuffer arena, const KvCacheSpec& kv, KvDtype kv_dtype,
                       int num_threads)
    : weights_(std::move(weights)), matrices_(std::move(arena)), kv_(kv), kv_dtype_(kv_dtype), pool_(num_threads) {
  const ModelConfig& c = weights_.config;
  PlaceMatrices();
  rope_ = BuildRopeTable(c.max_position_embeddings, c.head_dim(), c.rope_theta, c.rope_scaling_factor);
  const size_t per_layer_bytes =
      static_cast<size_t>(kv_.num_blocks) * kv_.num_kv_heads * kv_.block_size * kv_.head_dim * kv_.dtype_bytes;
  k_cache_.assign(c.num_hidden_layers, std::vector<uint8_t>(per_layer_bytes, 0));
  v_cache_.assign(c.num_hidden_layers, std::vector<uint8_t>(per_layer_bytes, 0));
  scores_.assign(pool_.num_threads(), std::vector<float>(c.max_position_embeddings));
}

// Packs every matrix (packed_matmul.h) into the huge-page arena (huge_page_buffer.h) and frees the originals.
void CpuBackend::PlaceMatrices() {
  const ModelConfig& c = weights_.config;
  reward_model_ = weights_.is_reward_model();  // before score moves out of weights_
  const int dim = c.hidden_size, hidden = c.intermediate_size, hd = c.head_dim();
  const int q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  const bool untied = !weights_.lm_head.empty();
  CHECK_EQ(matrices_.size(), PackedWeightFloats(weights_));
  float* cursor = matrices_.data();
  auto place = [&](std::vector<float>* m, int rows, int cols) -> const float* {
    const float* placed = cursor;
    PackWeights(m->data(), rows, cols, cursor);
    cursor += PackedSize(rows, cols);
    std::vector<float>().swap(*m);
    return placed;
  };
  for (LayerWeights& l : weights_.layers) {
    layer_matrices_.push_back({place(&l.wq, q_rows, dim), place(&l.wk, kv_rows, dim), place(&l.wv, kv_rows, dim),
                               place(&l.wo, dim, q_rows), place(&l.w_gate, hidden, dim),
                               place(&l.w_up, hidden, dim), place(&l.w_down, dim, hidden)});
  }
  embed_tokens_ = place(&weights_.embed_tokens, c.vocab_size, dim);
  if (reward_model_) {
    output_proj_ = place(&weights_.score, c.num_labels, dim);
  } else {
    output_proj_ = untied ? place(&weights_.lm_head, c.vocab_size, dim) : embed_tokens_;
  }
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
    UnpackRow(embed_tokens_, c.vocab_size, static_cast<int>(dim), input.token_ids[t], x_.data() + t * dim);
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
  pool_.ParallelFor(q_tasks + 2 * kv_tasks, [&](int task, int) {
    const float* xn = xnorm_.data();
    if (task < q_tasks) {
      const int r0 = static_cast<int>(task * q_chunk);
      PackedMatMulRows(xn, m.wq, q_.data(), n, dim, q_rows, r0, std::min<int>(q_rows, r0 + q_chunk), false);
      return;
    }
    task -= q_tasks;
    const bool value = task >= kv_tasks;
    const int r0 = static_cast<int>((value ? task - kv_tasks : task) * kv_chunk);
    PackedMatMulRows(xn, value ? m.wv : m.wk, value ? v_.data() : k_.data(), n, dim, kv_rows, r0,
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
  pool_.ParallelForRange(dim, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    PackedMatMulRows(attn_.data(), m.wo, x_.data(), n, nh * hd, dim, r0, r1, true);
  });
}

// RMSNorm, then gate and up projections → silu(gate) * up (one region, split by FFN row), then down + residual.
void CpuBackend::FfnBlock(int layer, int n) {
  const ModelConfig& c = weights_.config;
  const LayerWeights& w = weights_.layers[layer];  // norms
  const LayerMatrices& m = layer_matrices_[layer];
  const int dim = c.hidden_size, hidden = c.intermediate_size;
  RmsNorm(x_.data(), w.ffn_norm.data(), n, dim, c.rms_norm_eps, xnorm_.data());
  pool_.ParallelForRange(hidden, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    PackedMatMulRows(xnorm_.data(), m.w_gate, gate_.data(), n, dim, hidden, r0, r1, false);
    PackedMatMulRows(xnorm_.data(), m.w_up, up_.data(), n, dim, hidden, r0, r1, false);
    for (int t = 0; t < n; ++t) {
      float* g = gate_.data() + static_cast<int64_t>(t) * hidden;
      SiluMul(g + r0, up_.data() + static_cast<int64_t>(t) * hidden + r0, r1 - r0, g + r0);
    }
  });
  pool_.ParallelForRange(dim, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    PackedMatMulRows(gate_.data(), m.w_down, x_.data(), n, hidden, dim, r0, r1, true);
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
  pool_.ParallelForRange(vocab, kRowGrain, [&](int64_t r0, int64_t r1, int) {
    PackedMatMulRows(out_hidden_.data(), output_proj_, out_logits_.data(), num_out, dim, vocab, r0, r1, false);
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
