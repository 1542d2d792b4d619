#include "engine/model/model_shapes.h"

#include "absl/strings/str_cat.h"

namespace llama {
namespace {

ModelConfig Shape(int dim, int intermediate, int layers, int heads, int kv_heads, int max_positions,
                  bool tied = false) {
  ModelConfig c;
  c.hidden_size = dim;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.vocab_size = 32000;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.torch_dtype = "float16";
  c.tie_word_embeddings = tied;
  return c;
}

}  // namespace

absl::StatusOr<ModelConfig> NamedModelConfig(const std::string& name) {
  // The first two are the published Llama-2-{7,13}b-hf config.json values.
  if (name == "llama-2-7b") return Shape(4096, 11008, 32, 32, 32, 4096);
  if (name == "llama-2-13b") return Shape(5120, 13824, 40, 40, 40, 4096);
  // TinyLlama-1.1B's config.json (GQA: 4 KV heads for 32 query heads); llama2.c's stories15M (tied embeddings).
  if (name == "tinyllama-1.1b") return Shape(2048, 5632, 22, 32, 4, 2048);
  if (name == "stories15M") return Shape(288, 768, 6, 6, 6, 256, /*tied=*/true);
  if (name == "tiny") return Shape(256, 768, 4, 8, 2, 1024);
  return absl::InvalidArgumentError(absl::StrCat("--dummy_weights: unknown shape '", name,
                                                 "' (llama-2-7b, llama-2-13b, tinyllama-1.1b, stories15M, tiny)"));
}

}  // namespace llama
