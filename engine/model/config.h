// ModelConfig: the shape of a Llama model, read from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llama {

struct ModelConfig {
  int hidden_size = 0;          // dim
  int intermediate_size = 0;    // FFN hidden dim
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // == num_attention_heads for multi-head; fewer for GQA
  int vocab_size = 0;
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  // Linear RoPE scaling (position interpolation): position i is rotated as i / rope_scaling_factor.
  float rope_scaling_factor = 1.0f;
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  int eos_token_id = 2;
  std::string torch_dtype = "float32";
  // Reward models (LlamaForSequenceClassification): the score head has num_labels rows.
  int num_labels = 0;

  int head_dim() const { return hidden_size / num_attention_heads; }
  int group_size() const { return num_attention_heads / num_key_value_heads; }
  // K and V bytes one token takes in the KV cache across all layers: 2 · n_layers · n_kv_heads · head_dim · bytes.
  int64_t KvBytesPerToken(int dtype_bytes) const {
    return int64_t{2} * num_hidden_layers * num_key_value_heads * head_dim() * dtype_bytes;
  }
  // Every field in range and consistent (heads divide dim, kv heads divide heads, even head_dim for RoPE).
  absl::Status Validate() const;
};

// Parses config.json text. Unknown fields are ignored; missing required ones are an error naming the field.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);
// Serialises to config.json text (Hugging Face LlamaForCausalLM layout).
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace llama
