#include "engine/cuda/device_weights.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/tensor_init.cuh"

namespace llama::cuda {
namespace {

struct Part {
  const std::vector<float>* data;
  int64_t expected;  // elements
  std::string name;
};

// Concatenates the parts (row blocks of one fused matrix) into a fresh device tensor of `dtype`.
// fp32 goes straight in; other types pass through a fp32 staging buffer and a conversion kernel.
absl::StatusOr<DeviceBuffer> Upload(const std::vector<Part>& parts, DType dtype, DeviceBuffer* staging,
                                    cudaStream_t stream) {
  int64_t total = 0;
  for (const Part& p : parts) {
    if (static_cast<int64_t>(p.data->size()) != p.expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights: ", p.name, " has ", p.data->size(), " values, the config needs ", p.expected));
    }
    total += p.expected;
  }
  ASSIGN_OR_RETURN(DeviceBuffer out, DeviceBuffer::Allocate(total * DTypeBytes(dtype)));
  int64_t offset = 0;  // elements
  for (const Part& p : parts) {
    const int64_t bytes = p.expected * static_cast<int64_t>(sizeof(float));
    char* dst = out.as<char>() + offset * DTypeBytes(dtype);
    if (dtype == DType::kF32) {
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, p.data->data(), bytes, cudaMemcpyHostToDevice, stream));
    } else {
      // The staging buffer is reused by the next part only after this conversion (same stream, in order).
      RETURN_IF_ERROR(staging->Reserve(bytes));
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(staging->get(), p.data->data(), bytes, cudaMemcpyHostToDevice, stream));
      RETURN_IF_ERROR(ConvertFromF32(staging->as<float>(), p.expected, dst, dtype, stream));
    }
    offset += p.expected;
  }
  return out;
}

absl::StatusOr<DeviceBuffer> UploadNorm(const std::vector<float>& data, int64_t expected, const std::string& name,
                                        DeviceBuffer* staging, cudaStream_t stream) {
  return Upload({{&data, expected, name}}, DType::kF32, staging, stream);
}

}  // namespace

int64_t DeviceModelWeights::bytes() const {
  int64_t total = embed.bytes() + final_norm.bytes() + output.bytes();
  for (const DeviceLayerWeights& l : layers) {
    total += l.attn_norm.bytes() + l.wqkv.bytes() + l.wo.bytes() + l.ffn_norm.bytes() + l.w_gate_up.bytes() +
             l.w_down.bytes();
  }
  return total;
}

absl::StatusOr<DeviceModelWeights> UploadWeights(const ModelWeights& w, DType dtype, cudaStream_t stream) {
  const ModelConfig& c = w.config;
  RETURN_IF_ERROR(c.Validate());
  if (static_cast<int>(w.layers.size()) != c.num_hidden_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights have ", w.layers.size(), " layers, config says ", c.num_hidden_layers));
  }
  const int64_t dim = c.hidden_size, inter = c.intermediate_size, hd = c.head_dim();
  const int64_t q_rows = c.num_attention_heads * hd, kv_rows = c.num_key_value_heads * hd;
  DeviceModelWeights d;
  d.config = c;
  d.dtype = dtype;
  DeviceBuffer staging;
  ASSIGN_OR_RETURN(d.embed, Upload({{&w.embed_tokens, c.vocab_size * dim, "embed_tokens"}}, dtype, &staging, stream));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const std::string p = absl::StrCat("layer ", l, " ");
    DeviceLayerWeights dl;
    ASSIGN_OR_RETURN(dl.attn_norm, UploadNorm(lw.attn_norm, dim, p + "input_layernorm", &staging, stream));
    ASSIGN_OR_RETURN(dl.wqkv, Upload({{&lw.wq, q_rows * dim, p + "q_proj"},
                                      {&lw.wk, kv_rows * dim, p + "k_proj"},
                                      {&lw.wv, kv_rows * dim, p + "v_proj"}},
                                     dtype, &staging, stream));
    ASSIGN_OR_RETURN(dl.wo, Upload({{&lw.wo, dim * q_rows, p + "o_proj"}}, dtype, &staging, stream));
    ASSIGN_OR_RETURN(dl.ffn_norm, UploadNorm(lw.ffn_norm, dim, p + "post_attention_layernorm", &staging, stream));
    ASSIGN_OR_RETURN(dl.w_gate_up, Upload({{&lw.w_gate, inter * dim, p + "gate_proj"},
                                           {&lw.w_up, inter * dim, p + "up_proj"}},
                                          dtype, &staging, stream));
    ASSIGN_OR_RETURN(dl.w_down, Upload({{&lw.w_down, dim * inter, p + "down_proj"}}, dtype, &staging, stream));
    d.layers.push_back(std::move(dl));
  }
  ASSIGN_OR_RETURN(d.final_norm, UploadNorm(w.final_norm, dim, "model.norm", &staging, stream));
  d.reward = w.is_reward_model();
  if (d.reward) {
    d.output_rows = c.num_labels;
    ASSIGN_OR_RETURN(d.output, Upload({{&w.score, c.num_labels * dim, "score"}}, dtype, &staging, stream));
    d.score_bias = w.score_bias;
  } else {
    d.output_rows = c.vocab_size;
    if (!w.lm_head.empty()) {
      ASSIGN_OR_RETURN(d.output, Upload({{&w.lm_head, c.vocab_size * dim, "lm_head"}}, dtype, &staging, stream));
    }
  }
  // The staging buffer dies at return: wait for the copies and conversions that read it.
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return d;
}

absl::StatusOr<DeviceModelWeights> MakeDummyDeviceWeights(const ModelConfig& c, DType dtype, uint64_t seed,
                                                          cudaStream_t stream) {
  RETURN_IF_ERROR(c.Validate());
  const int64_t dim = c.hidden_size, inter = c.intermediate_size, hd = c.head_dim();
  const int64_t qkv_rows = (c.num_attention_heads + 2 * c.num_key_value_heads) * hd;
  const float matrix_half_width = 0.02f * std::sqrt(3.0f);  // std 0.02, as MakeRandomWeights
  uint64_t tensor = 0;
  auto make = [&](int64_t n, DType t, float center, float half_width) -> absl::StatusOr<DeviceBuffer> {
    ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::Allocate(n * DTypeBytes(t)));
    RETURN_IF_ERROR(FillUniform(b.get(), t, n, center, half_width, seed * 1000003ull + tensor++, stream));
    return b;
  };
  DeviceModelWeights d;
  d.config = c;
  d.dtype = dtype;
  ASSIGN_OR_RETURN(d.embed, make(c.vocab_size * dim, dtype, 0.0f, matrix_half_width));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    DeviceLayerWeights dl;
    ASSIGN_OR_RETURN(dl.attn_norm, make(dim, DType::kF32, 1.0f, 0.1f));
    ASSIGN_OR_RETURN(dl.wqkv, make(qkv_rows * dim, dtype, 0.0f, matrix_half_width));
    ASSIGN_OR_RETURN(dl.wo, make(dim * c.num_attention_heads * hd, dtype, 0.0f, matrix_half_width));
    ASSIGN_OR_RETURN(dl.ffn_norm, make(dim, DType::kF32, 1.0f, 0.1f));
    ASSIGN_OR_RETURN(dl.w_gate_up, make(2 * inter * dim, dtype, 0.0f, matrix_half_width));
    ASSIGN_OR_RETURN(dl.w_down, make(dim * inter, dtype, 0.0f, matrix_half_width));
    d.layers.push_back(std::move(dl));
  }
  ASSIGN_OR_RETURN(d.final_norm, make(dim, DType::kF32, 1.0f, 0.1f));
  d.output_rows = c.vocab_size;
  if (!c.tie_word_embeddings) {
    ASSIGN_OR_RETURN(d.output, make(c.vocab_size * dim, dtype, 0.0f, matrix_half_width));
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return d;
}

}  // namespace llama::cuda
