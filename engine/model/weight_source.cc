#include "engine/model/weight_source.h"

#include <algorithm>
#include <charconv>
#include <new>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace llama {
namespace {

// The vector of `w` that holds tensor `name` (nullptr for a name ModelWeights has no place for). W is ModelWeights
// or const ModelWeights.
template <typename W>
auto* TensorData(W* w, std::string_view name) {
  using Vec = std::conditional_t<std::is_const_v<W>, const std::vector<float>, std::vector<float>>;
  Vec* none = nullptr;
  if (name == "model.embed_tokens.weight") return &w->embed_tokens;
  if (name == "model.norm.weight") return &w->final_norm;
  if (name == "lm_head.weight") return &w->lm_head;
  if (name == "score.weight") return &w->score;
  if (name == "score.bias") return &w->score_bias;
  constexpr std::string_view kLayers = "model.layers.";
  if (!name.starts_with(kLayers)) return none;
  name.remove_prefix(kLayers.size());
  size_t layer = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), layer);
  if (ec != std::errc() || end == name.data() || *end != '.' || layer >= w->layers.size()) return none;
  const std::string_view suffix(end + 1, name.data() + name.size() - end - 1);
  auto& lw = w->layers[layer];
  if (suffix == "input_layernorm.weight") return &lw.attn_norm;
  if (suffix == "self_attn.q_proj.weight") return &lw.wq;
  if (suffix == "self_attn.k_proj.weight") return &lw.wk;
  if (suffix == "self_attn.v_proj.weight") return &lw.wv;
  if (suffix == "self_attn.o_proj.weight") return &lw.wo;
  if (suffix == "post_attention_layernorm.weight") return &lw.ffn_norm;
  if (suffix == "mlp.gate_proj.weight") return &lw.w_gate;
  if (suffix == "mlp.up_proj.weight") return &lw.w_up;
  if (suffix == "mlp.down_proj.weight") return &lw.w_down;
  return none;
}

std::string ShapeString(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// The shape ModelTensorSpecs gives `name` (score.bias: [num_labels]); empty when the config has no such tensor.
std::vector<int64_t> ExpectedShape(const ModelConfig& config, std::string_view name) {
  if (name == "score.bias" && config.num_labels > 0) return {config.num_labels};
  for (auto& spec : ModelTensorSpecs(config)) {
    if (spec.name == name) return spec.shape;
  }
  return {};
}

}  // namespace

const char* StoredDtypeName(StoredDtype dtype) {
  switch (dtype) {
    case StoredDtype::kF32: return "F32";
    case StoredDtype::kF16: return "F16";
    case StoredDtype::kBF16: return "BF16";
    case StoredDtype::kQ8_0: return "Q8_0";
    case StoredDtype::kQ4_0: return "Q4_0";
  }
  return "?";
}

absl::Status CheckWeightShapes(const WeightSource& source) {
  const ModelConfig& c = source.config();
  std::vector<TensorSpec> specs = ModelTensorSpecs(c);
  if (c.num_labels > 0 && source.Info("score.bias").ok()) specs.push_back({"score.bias", {c.num_labels}});
  for (const TensorSpec& spec : specs) {
    auto info = source.Info(spec.name);
    // A tensor the config needs and the source lacks is a broken model: INVALID_ARGUMENT, as a misshapen one is.
    if (absl::IsNotFound(info.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing tensor '", spec.name, "' (expected shape ", ShapeString(spec.shape), ")"));
    }
    if (!info.ok()) return absl::Status(info.status().code(), absl::StrCat("tensor '", spec.name, "': ", info.status().message()));
    if (info->shape != spec.shape) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name, "' has shape ", ShapeString(info->shape),
                                                     ", expected ", ShapeString(spec.shape)));
    }
  }
  return absl::OkStatus();
}

bool HasScoreHead(const WeightSource& source) { return source.Info("score.weight").ok(); }
bool HasLmHead(const WeightSource& source) { return source.Info("lm_head.weight").ok(); }

InMemoryWeightSource::InMemoryWeightSource(ModelWeights weights)
    : InMemoryWeightSource(new ModelWeights(std::move(weights))) {
  owned_.reset(const_cast<ModelWeights*>(weights_));
}

void InMemoryWeightSource::Release(const std::string& name) const {
  if (owned_ == nullptr) return;
  std::vector<float>* data = TensorData(owned_.get(), name);
  if (data != nullptr) std::vector<float>().swap(*data);
}

InMemoryWeightSource::InMemoryWeightSource(const ModelWeights* weights) : weights_(weights) {
  std::vector<TensorSpec> specs = ModelTensorSpecs(weights->config);
  // Names the config does not imply but ModelWeights can hold (e.g. an lm_head next to tied embeddings) are
  // listed too, so a shape check can name them.
  for (const char* name : {"lm_head.weight", "score.weight", "score.bias"}) specs.push_back({name, {}});
  for (const TensorSpec& spec : specs) {
    const std::vector<float>* data = TensorData(weights, spec.name);
    if (data == nullptr || data->empty() || infos_.contains(spec.name)) continue;
    std::vector<int64_t> shape = ExpectedShape(weights->config, spec.name);
    int64_t expected = 1;
    for (int64_t d : shape) expected *= d;
    // A vector whose size disagrees with the config is reported as what it holds, so CheckWeightShapes names it.
    if (shape.empty() || expected != static_cast<int64_t>(data->size())) shape = {static_cast<int64_t>(data->size())};
    infos_[spec.name] = TensorInfo{std::move(shape), StoredDtype::kF32};
  }
}

absl::StatusOr<TensorInfo> InMemoryWeightSource::Info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) return absl::NotFoundError(absl::StrCat("no tensor ", name));
  return it->second;
}

absl::Status InMemoryWeightSource::ReadRows(const std::string& name, int64_t row_begin, int64_t row_end,
                                            float* out) const {
  ASSIGN_OR_RETURN(TensorInfo info, Info(name));
  if (row_begin < 0 || row_end < row_begin || row_end > info.rows()) {
    return absl::InvalidArgumentError(absl::StrCat("rows [", row_begin, ", ", row_end, ") of ", name, " outside [0, ",
                                                   info.rows(), ")"));
  }
  const std::vector<float>& data = *TensorData(weights_, name);
  std::copy(data.begin() + row_begin * info.cols(), data.begin() + row_end * info.cols(), out);
  return absl::OkStatus();
}

absl::StatusOr<ModelWeights> MaterializeWeights(const WeightSource& source) {
  RETURN_IF_ERROR(CheckWeightShapes(source));
  ModelWeights w;
  w.config = source.config();
  w.layers.resize(w.config.num_hidden_layers);
  std::vector<TensorSpec> specs = ModelTensorSpecs(w.config);
  if (w.config.num_labels > 0 && source.Info("score.bias").ok()) specs.push_back({"score.bias", {w.config.num_labels}});
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(TensorInfo info, source.Info(spec.name));
    std::vector<float>* data = TensorData(&w, spec.name);
    try {
      data->resize(info.num_elements());
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", info.num_elements() * 4, " bytes for tensor ", spec.name));
    }
    RETURN_IF_ERROR(source.ReadRows(spec.name, 0, info.rows(), data->data()));
    source.Release(spec.name);
  }
  return w;
}

}  // namespace llama
