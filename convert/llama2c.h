// Reading karpathy/llama2.c checkpoints (the legacy version-0 ".bin" export) into ModelWeights in the Hugging Face
// layout, as HF's convert_llama_weights_to_hf.py would have produced them from the same Meta-layout weights.
//
// File layout (all little-endian): 7 int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len} (vocab_size < 0: the classifier is not shared with the embedding), then fp32 arrays:
//   token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim], wv [L, kv_dim, dim],
//   wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim],
//   rms_final [dim], freq_cis_real [seq_len, head_size/2], freq_cis_imag [seq_len, head_size/2] (unused),
//   wcls [vocab, dim] only when not shared.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/weights.h"

namespace llama {

struct Llama2cHeader {
  int dim = 0;
  int hidden_dim = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab_size = 0;  // absolute value
  bool shared_classifier = true;
  int seq_len = 0;
};

// Reads and converts a llama2.c checkpoint. The file size must match the header exactly.
// Config: rms_norm_eps 1e-5, rope_theta 10000, max_position_embeddings = seq_len, bos 1, eos 2, tied embeddings
// when the classifier is shared.
absl::StatusOr<ModelWeights> LoadLlama2c(const std::string& path);

// llama2.c (like Meta's reference) rotates interleaved pairs (2i, 2i+1) of each head; HF rotates (i, i + d/2).
// Reorders the rows of a q or k projection [n_heads * head_dim, cols] within each head so that row 2i+c of a head
// moves to row c * head_dim/2 + i: the same permutation as HF's convert script applies.
std::vector<float> PermuteInterleavedToRotateHalf(const std::vector<float>& w, int n_heads, int head_dim, int cols);

}  // namespace llama
