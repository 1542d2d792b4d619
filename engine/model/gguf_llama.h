// The llama conventions of GGUF files, as llama.cpp's Hugging Face converter writes them: the tensor names, the
// row order of the q/k projections, and the metadata keys a ModelConfig comes from. One table for the reader
// (gguf_source.h) and our writer (convert/gguf_writer.h).
//
// Names: model.embed_tokens.weight = token_embd.weight, model.norm.weight = output_norm.weight, lm_head.weight =
// output.weight (absent: tied embeddings), and per layer N blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
// ffn_norm, ffn_gate, ffn_up, ffn_down}.weight for input_layernorm, self_attn.{q,k,v,o}_proj,
// post_attention_layernorm, mlp.{gate,up,down}_proj. A matrix [rows, cols] is stored with dims {cols, rows}.
//
// q/k rows: the converter undoes HF's rotate-half permutation, so within each head of d rows the GGUF file holds
// Meta's interleaved order: HF row h·d + c·d/2 + i (c ∈ {0, 1}, i < d/2) is GGUF row h·d + 2i + c. Whole rows
// move, so the permutation works on quantized rows too (Q8_0/Q4_0 blocks run along a row).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/model/config.h"
#include "engine/model/gguf.h"

namespace llama {

inline constexpr char kGgufArchitectureKey[] = "general.architecture";
inline constexpr char kGgufAlignmentKey[] = "general.alignment";

// The GGUF name of a Hugging Face tensor name; "" for one llama GGUF files do not have (e.g. score.weight).
std::string GgufTensorName(std::string_view hf_name);

// Heads a q/k projection's rows are grouped in (num_attention_heads for q_proj, num_key_value_heads for k_proj);
// 0 for every other tensor, whose rows are stored in order.
int PermutedHeads(std::string_view hf_name, const ModelConfig& config);

// The GGUF row that holds HF row `row` of a q/k projection whose heads have head_dim rows.
int64_t InterleavedRow(int64_t row, int head_dim);

// A ModelConfig from the llama metadata: general.architecture "llama"; required llama.context_length,
// .embedding_length, .block_count, .feed_forward_length, .attention.head_count, .attention.layer_norm_rms_epsilon;
// optional .attention.head_count_kv (default: head_count), .rope.freq_base (10000), .rope.dimension_count (must be
// head_dim), .rope.scaling.type none|linear with .rope.scaling.factor (or the older .rope.scale_linear),
// .vocab_size (else the length of tokenizer.ggml.tokens, else token_embd's rows); tokenizer.ggml.bos_token_id /
// eos_token_id (1, 2); tied embeddings when output.weight is absent. Errors are INVALID_ARGUMENT naming the key.
absl::StatusOr<ModelConfig> GgufModelConfig(const GgufFile& file);

}  // namespace llama
