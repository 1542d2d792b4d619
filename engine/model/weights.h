// ModelWeights: a Llama model's tensors on the host in fp32, named and shaped as in the Hugging Face layout.
// q_proj/k_proj rows use the Hugging Face "rotate-half" RoPE convention (pairs (i, i + head_dim/2)); the engine
// uses that convention everywhere, and the llama2.c converter permutes into it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/config.h"

namespace llama {

struct LayerWeights {
  std::vector<float> attn_norm;  // [dim]                       input_layernorm
  std::vector<float> wq;         // [n_heads * head_dim, dim]    self_attn.q_proj
  std::vector<float> wk;         // [n_kv_heads * head_dim, dim] self_attn.k_proj
  std::vector<float> wv;         // [n_kv_heads * head_dim, dim] self_attn.v_proj
  std::vector<float> wo;         // [dim, n_heads * head_dim]    self_attn.o_proj
  std::vector<float> ffn_norm;   // [dim]                       post_attention_layernorm
  std::vector<float> w_gate;     // [intermediate, dim]         mlp.gate_proj
  std::vector<float> w_up;       // [intermediate, dim]         mlp.up_proj
  std::vector<float> w_down;     // [dim, intermediate]         mlp.down_proj
};

struct ModelWeights {
  ModelConfig config;
  std::vector<float> embed_tokens;  // [vocab, dim]  model.embed_tokens
  std::vector<LayerWeights> layers;  // [num_hidden_layers]
  std::vector<float> final_norm;    // [dim]  model.norm
  std::vector<float> lm_head;       // [vocab, dim]; empty when tied to embed_tokens or for reward models
  std::vector<float> score;         // [num_labels, dim]  reward head (score.weight); empty for causal LMs
  std::vector<float> score_bias;    // [num_labels]  optional score.bias

  // The output projection: lm_head, or embed_tokens when the embeddings are tied.
  const std::vector<float>& output_projection() const { return lm_head.empty() ? embed_tokens : lm_head; }
  bool is_reward_model() const { return !score.empty(); }
};

// Hugging Face tensor names, shared by the loader, the converter and the tests.
std::string LayerTensorName(int layer, const std::string& suffix);  // "model.layers.{layer}.{suffix}"

// One tensor a model has: its Hugging Face name and shape.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// The tensors a model with this config must have, in checkpoint order: embed_tokens, per layer the two norms and
// seven matrices, the final norm, then lm_head (untied causal LMs) or score.weight (reward models). The optional
// score.bias is not listed.
std::vector<TensorSpec> ModelTensorSpecs(const ModelConfig& config);
// INVALID_ARGUMENT "<what> <layers> needs at least 9·layers tensors, the file has M" when a file of `num_tensors`
// tensors cannot hold even the per-layer tensors of the config. Loaders check it before anything is sized by
// num_hidden_layers: a config that claims 10^8 layers is refused at once instead of allocating gigabytes of specs
// first (found by fuzz/gguf_fuzzer). A file a few tensors short passes, so the error names the missing tensor.
absl::Status CheckLayerCount(const ModelConfig& config, size_t num_tensors, const std::string& what);

// Host fp32 weights of the model at model_path: a model directory (config.json and model.safetensors, or the shards
// named by model.safetensors.index.json) or a GGUF file (model_source.h). Read through the WeightSource one tensor
// at a time, each tensor's file pages dropped once it is converted, so the only full copy is the result. Every
// tensor the config needs must be present with the right shape; RESOURCE_EXHAUSTED when memory runs out.
absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& model_path);

// Random weights of a given shape (for tests and benchmarks without a checkpoint): normal(0, scale) matrices,
// norms around 1. Deterministic in seed.
ModelWeights MakeRandomWeights(const ModelConfig& config, uint64_t seed, float scale = 0.02f);

// Writes model.safetensors (F32) and config.json into dir (created if missing).
absl::Status SaveModel(const ModelWeights& weights, const std::string& dir);

}  // namespace llama
