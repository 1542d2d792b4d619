#include "engine/model/gguf_llama.h"

#include <charconv>
#include <limits>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"

namespace llama {
namespace {

constexpr uint64_t kMaxInt = std::numeric_limits<int32_t>::max();

struct LayerName {
  const char* hf;    // suffix after "model.layers.N."
  const char* gguf;  // suffix after "blk.N."
};
constexpr LayerName kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},     {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},       {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},  {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},        {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

absl::Status KeyError(const GgufFile& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": gguf: ", what));
}

// A required key: NOT_FOUND becomes INVALID_ARGUMENT naming it (the file is not a usable llama model).
template <typename T>
absl::StatusOr<T> Required(const GgufFile& file, const std::string& key, absl::StatusOr<T> value) {
  if (absl::IsNotFound(value.status())) return KeyError(file, absl::StrCat("missing required metadata key '", key, "'"));
  return value;
}

// An optional key: its value, or `fallback` when absent; a present key of the wrong type is still an error.
template <typename T>
absl::StatusOr<T> Optional(absl::StatusOr<T> value, T fallback) {
  if (absl::IsNotFound(value.status())) return fallback;
  return value;
}

absl::StatusOr<int> RequiredInt(const GgufFile& file, const std::string& key) {
  ASSIGN_OR_RETURN(uint64_t v, Required(file, key, file.GetUint(key, kMaxInt)));
  return static_cast<int>(v);
}

// Linear RoPE scaling from rope.scaling.type/.factor or the older rope.scale_linear; 1 when absent.
absl::StatusOr<float> RopeScalingFactor(const GgufFile& file) {
  ASSIGN_OR_RETURN(std::string_view type, Optional(file.GetString("llama.rope.scaling.type"), std::string_view()));
  if (type.empty()) {
    ASSIGN_OR_RETURN(double factor, Optional(file.GetFloat("llama.rope.scale_linear"), 1.0));
    return static_cast<float>(factor);
  }
  if (type == "none") return 1.0f;
  if (type != "linear") {
    return KeyError(file, absl::StrCat("llama.rope.scaling.type '", std::string(type), "' is not supported (none, linear)"));
  }
  ASSIGN_OR_RETURN(double factor, Required(file, "llama.rope.scaling.factor", file.GetFloat("llama.rope.scaling.factor")));
  return static_cast<float>(factor);
}

absl::StatusOr<int> VocabSize(const GgufFile& file) {
  if (file.Find("llama.vocab_size") != nullptr) return RequiredInt(file, "llama.vocab_size");
  if (const GgufValue* tokens = file.Find("tokenizer.ggml.tokens")) {
    if (tokens->type == GgufValueType::kArray && tokens->array_size <= kMaxInt) {
      return static_cast<int>(tokens->array_size);
    }
  }
  if (const GgufTensorInfo* embd = file.FindTensor("token_embd.weight"); embd != nullptr && embd->dims.size() == 2) {
    if (embd->dims[1] <= static_cast<int64_t>(kMaxInt)) return static_cast<int>(embd->dims[1]);
  }
  return KeyError(file, "no vocab size: none of llama.vocab_size, tokenizer.ggml.tokens, token_embd.weight");
}

}  // namespace

std::string GgufTensorName(std::string_view hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  constexpr std::string_view kLayers = "model.layers.";
  if (!hf_name.starts_with(kLayers)) return "";
  hf_name.remove_prefix(kLayers.size());
  int layer = 0;
  auto [end, ec] = std::from_chars(hf_name.data(), hf_name.data() + hf_name.size(), layer);
  if (ec != std::errc() || end == hf_name.data() || end == hf_name.data() + hf_name.size() || *end != '.') return "";
  const std::string_view suffix(end + 1, hf_name.data() + hf_name.size() - end - 1);
  for (const LayerName& n : kLayerNames) {
    if (suffix == n.hf) return absl::StrCat("blk.", layer, ".", n.gguf);
  }
  return "";
}

int PermutedHeads(std::string_view hf_name, const ModelConfig& config) {
  if (hf_name.ends_with(".self_attn.q_proj.weight")) return config.num_attention_heads;
  if (hf_name.ends_with(".self_attn.k_proj.weight")) return config.num_key_value_heads;
  return 0;
}

int64_t InterleavedRow(int64_t row, int head_dim) {
  CHECK(head_dim > 0 && head_dim % 2 == 0);
  const int64_t half = head_dim / 2;
  const int64_t head = row / head_dim, j = row % head_dim;
  return head * head_dim + 2 * (j % half) + j / half;
}

absl::StatusOr<ModelConfig> GgufModelConfig(const GgufFile& file) {
  ASSIGN_OR_RETURN(std::string_view arch, Required(file, kGgufArchitectureKey, file.GetString(kGgufArchitectureKey)));
  if (arch != "llama") {
    return KeyError(file, absl::StrCat("general.architecture is '", std::string(arch), "'; only llama models are supported"));
  }
  ModelConfig c;
  ASSIGN_OR_RETURN(c.max_position_embeddings, RequiredInt(file, "llama.context_length"));
  ASSIGN_OR_RETURN(c.hidden_size, RequiredInt(file, "llama.embedding_length"));
  ASSIGN_OR_RETURN(c.num_hidden_layers, RequiredInt(file, "llama.block_count"));
  ASSIGN_OR_RETURN(c.intermediate_size, RequiredInt(file, "llama.feed_forward_length"));
  ASSIGN_OR_RETURN(c.num_attention_heads, RequiredInt(file, "llama.attention.head_count"));
  c.num_key_value_heads = c.num_attention_heads;
  if (file.Find("llama.attention.head_count_kv") != nullptr) {
    ASSIGN_OR_RETURN(c.num_key_value_heads, RequiredInt(file, "llama.attention.head_count_kv"));
  }
  ASSIGN_OR_RETURN(double eps, Required(file, "llama.attention.layer_norm_rms_epsilon",
                                        file.GetFloat("llama.attention.layer_norm_rms_epsilon")));
  c.rms_norm_eps = static_cast<float>(eps);
  ASSIGN_OR_RETURN(double theta, Optional(file.GetFloat("llama.rope.freq_base"), 10000.0));
  c.rope_theta = static_cast<float>(theta);
  ASSIGN_OR_RETURN(c.rope_scaling_factor, RopeScalingFactor(file));
  ASSIGN_OR_RETURN(c.vocab_size, VocabSize(file));
  c.tie_word_embeddings = file.FindTensor("output.weight") == nullptr;
  ASSIGN_OR_RETURN(uint64_t bos, Optional(file.GetUint("tokenizer.ggml.bos_token_id", kMaxInt), uint64_t{1}));
  ASSIGN_OR_RETURN(uint64_t eos, Optional(file.GetUint("tokenizer.ggml.eos_token_id", kMaxInt), uint64_t{2}));
  c.bos_token_id = static_cast<int>(bos);
  c.eos_token_id = static_cast<int>(eos);
  if (absl::Status s = c.Validate(); !s.ok()) return KeyError(file, absl::StrCat("llama metadata: ", s.message()));
  if (file.Find("llama.rope.dimension_count") != nullptr) {
    ASSIGN_OR_RETURN(int rope_dims, RequiredInt(file, "llama.rope.dimension_count"));
    if (rope_dims != c.head_dim()) {
      return KeyError(file, absl::StrCat("llama.rope.dimension_count ", rope_dims, " is not the head size ",
                                         c.head_dim(), " (partial rotary embeddings are not supported)"));
    }
  }
  return c;
}

}  // namespace llama
