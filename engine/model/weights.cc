#include "engine/model/weights.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "engine/model/model_source.h"
#include "engine/model/safetensors.h"
#include "engine/model/weight_source.h"

namespace llama {
namespace {

enum class Init { kMatrix, kNorm };

// One named tensor of ModelWeights: its HF name, shape, where it lives and how random weights initialise it.
// W is ModelWeights (load, random init) or const ModelWeights (save).
template <typename W>
struct TensorSlot {
  using Data = std::conditional_t<std::is_const_v<W>, const std::vector<float>, std::vector<float>>;
  std::string name;
  std::vector<int64_t> shape;
  Data* data;
  Init init;
};

// The tensors a model with this config must have, in checkpoint order. lm_head only for untied causal LMs;
// score only for reward models (whose output is the score head, so lm_head is not needed).
// w->layers must already hold num_hidden_layers entries.
template <typename W>
std::vector<TensorSlot<W>> RequiredSlots(const ModelConfig& c, W* w) {
  const int64_t dim = c.hidden_size, ffn = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_rows = int64_t{c.num_attention_heads} * c.head_dim();
  const int64_t kv_rows = int64_t{c.num_key_value_heads} * c.head_dim();
  CHECK_EQ(w->layers.size(), static_cast<size_t>(c.num_hidden_layers));
  std::vector<TensorSlot<W>> slots;
  slots.push_back({"model.embed_tokens.weight", {vocab, dim}, &w->embed_tokens, Init::kMatrix});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto& lw = w->layers[l];
    slots.push_back({LayerTensorName(l, "input_layernorm.weight"), {dim}, &lw.attn_norm, Init::kNorm});
    slots.push_back({LayerTensorName(l, "self_attn.q_proj.weight"), {q_rows, dim}, &lw.wq, Init::kMatrix});
    slots.push_back({LayerTensorName(l, "self_attn.k_proj.weight"), {kv_rows, dim}, &lw.wk, Init::kMatrix});
    slots.push_back({LayerTensorName(l, "self_attn.v_proj.weight"), {kv_rows, dim}, &lw.wv, Init::kMatrix});
    slots.push_back({LayerTensorName(l, "self_attn.o_proj.weight"), {dim, q_rows}, &lw.wo, Init::kMatrix});
    slots.push_back({LayerTensorName(l, "post_attention_layernorm.weight"), {dim}, &lw.ffn_norm, Init::kNorm});
    slots.push_back({LayerTensorName(l, "mlp.gate_proj.weight"), {ffn, dim}, &lw.w_gate, Init::kMatrix});
    slots.push_back({LayerTensorName(l, "mlp.up_proj.weight"), {ffn, dim}, &lw.w_up, Init::kMatrix});
    slots.push_back({LayerTensorName(l, "mlp.down_proj.weight"), {dim, ffn}, &lw.w_down, Init::kMatrix});
  }
  slots.push_back({"model.norm.weight", {dim}, &w->final_norm, Init::kNorm});
  if (c.num_labels > 0) {
    slots.push_back({"score.weight", {c.num_labels, dim}, &w->score, Init::kMatrix});
  } else if (!c.tie_word_embeddings) {
    slots.push_back({"lm_head.weight", {vocab, dim}, &w->lm_head, Init::kMatrix});
  }
  return slots;
}

// SplitMix64: a tiny, well-mixed generator whose output is the same on every platform (std:: distributions are
// implementation-defined, and random weights must be reproducible across machines).
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double Uniform01(uint64_t& state) { return (SplitMix64(state) >> 11) * 0x1.0p-53; }  // [0, 1)

// Fills values [begin, end) of one tensor. Each fixed-size chunk has its own seed, so the result does not depend
// on how chunks are spread over threads.
constexpr int64_t kChunk = int64_t{1} << 20;

void FillChunk(std::vector<float>& data, Init init, float scale, uint64_t seed, int64_t chunk) {
  uint64_t state = seed ^ (0x632be59bd9b4e019ull * static_cast<uint64_t>(chunk + 1));
  SplitMix64(state);
  const int64_t begin = chunk * kChunk, end = std::min<int64_t>(begin + kChunk, data.size());
  for (int64_t i = begin; i < end; i += 2) {
    // Box-Muller: two normals from two uniforms.
    const double u1 = 1.0 - Uniform01(state), u2 = Uniform01(state);
    const double r = std::sqrt(-2.0 * std::log(u1)), theta = 2.0 * M_PI * u2;
    const double z[2] = {r * std::cos(theta), r * std::sin(theta)};
    for (int k = 0; k < 2 && i + k < end; ++k) {
      // Norm gains near 1 (as trained models have), with a little spread so tests see non-trivial gains.
      data[i + k] = init == Init::kNorm ? static_cast<float>(1.0 + 0.1 * z[k]) : static_cast<float>(scale * z[k]);
    }
  }
}

}  // namespace

std::string LayerTensorName(int layer, const std::string& suffix) {
  return absl::StrCat("model.layers.", layer, ".", suffix);
}

absl::Status CheckLayerCount(const ModelConfig& config, size_t num_tensors, const std::string& what) {
  const int64_t needed = int64_t{9} * config.num_hidden_layers;
  if (static_cast<int64_t>(num_tensors) >= needed) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " ", config.num_hidden_layers, " needs at least ", needed,
                                                 " tensors (9 per layer), the file has ", num_tensors));
}

std::vector<TensorSpec> ModelTensorSpecs(const ModelConfig& config) {
  ModelWeights shapes_only;
  shapes_only.layers.resize(config.num_hidden_layers);
  std::vector<TensorSpec> specs;
  for (auto& slot : RequiredSlots(config, &shapes_only)) specs.push_back({slot.name, slot.shape});
  return specs;
}


absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& model_path) {
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenWeightSource(model_path));
  absl::StatusOr<ModelWeights> w = MaterializeWeights(*source);
  if (!w.ok()) return absl::Status(w.status().code(), absl::StrCat(model_path, ": ", w.status().message()));
  return w;
}

ModelWeights MakeRandomWeights(const ModelConfig& config, uint64_t seed, float scale) {
  CHECK_OK(config.Validate());
  ModelWeights w;
  w.config = config;
  w.layers.resize(config.num_hidden_layers);
  std::vector<TensorSlot<ModelWeights>> slots = RequiredSlots(config, &w);
  // Work items (tensor, chunk), spread round-robin over the hardware threads.
  std::vector<std::pair<size_t, int64_t>> work;
  for (size_t t = 0; t < slots.size(); ++t) {
    int64_t n = 1;
    for (int64_t d : slots[t].shape) n *= d;
    slots[t].data->assign(n, 0.0f);
    for (int64_t c = 0; c * kChunk < n; ++c) work.push_back({t, c});
  }
  const size_t num_threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 64);
  auto run = [&](size_t first) {
    for (size_t i = first; i < work.size(); i += num_threads) {
      auto [t, c] = work[i];
      uint64_t tensor_seed = seed * 0x9e3779b97f4a7c15ull + t;
      FillChunk(*slots[t].data, slots[t].init, scale, SplitMix64(tensor_seed), c);
    }
  };
  std::vector<std::thread> threads;
  for (size_t k = 1; k < std::min(num_threads, work.size()); ++k) threads.emplace_back(run, k);
  run(0);
  for (auto& th : threads) th.join();
  return w;
}

absl::Status SaveModel(const ModelWeights& weights, const std::string& dir) {
  RETURN_IF_ERROR(weights.config.Validate());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  if (weights.layers.size() != static_cast<size_t>(weights.config.num_hidden_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("SaveModel: ", weights.layers.size(), " layers, config says ",
                                                   weights.config.num_hidden_layers));
  }
  std::vector<SafetensorsWriteTensor> tensors;
  // WriteSafetensors checks every tensor's size against its shape.
  for (const auto& slot : RequiredSlots(weights.config, &weights)) {
    tensors.push_back({slot.name, slot.shape, *slot.data});
  }
  if (weights.config.num_labels > 0 && !weights.score_bias.empty()) {
    tensors.push_back({"score.bias", {weights.config.num_labels}, weights.score_bias});
  }
  RETURN_IF_ERROR(WriteSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}}));
  std::ofstream out(dir + "/config.json", std::ios::binary | std::ios::trunc);
  out << ModelConfigToJson(weights.config);
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", dir, "/config.json"));
  return absl::OkStatus();
}

}  // namespace llama
