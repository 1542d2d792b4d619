#include "engine/model/config.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

using Json = nlohmann::json;

absl::Status FieldError(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: field '", field, "' ", what));
}

// Reads an integer field; a missing field is an error when required, else leaves *out unchanged.
// null counts as missing (HF configs write e.g. "bos_token_id": null).
absl::Status ReadInt(const Json& j, const std::string& field, bool required, int* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (required) return FieldError(field, "is required but missing");
    return absl::OkStatus();
  }
  if (!it->is_number_integer()) return FieldError(field, absl::StrCat("must be an integer, got ", it->dump()));
  const int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) return FieldError(field, absl::StrCat("is out of range: ", v));
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status ReadFloat(const Json& j, const std::string& field, float* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return FieldError(field, absl::StrCat("must be a number, got ", it->dump()));
  *out = static_cast<float>(it->get<double>());
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& j, const std::string& field, bool* out) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return FieldError(field, absl::StrCat("must be true or false, got ", it->dump()));
  *out = it->get<bool>();
  return absl::OkStatus();
}

// bos/eos: an integer, null, or (newer HF configs) a list of ids whose first entry is used.
absl::Status ReadTokenId(const Json& j, const std::string& field, int* out) {
  auto it = j.find(field);
  if (it != j.end() && it->is_array()) {
    if (it->empty() || !(*it)[0].is_number_integer()) {
      return FieldError(field, absl::StrCat("must be an integer or a list of integers, got ", it->dump()));
    }
    *out = (*it)[0].get<int>();
    return absl::OkStatus();
  }
  return ReadInt(j, field, /*required=*/false, out);
}

// {"type" | "rope_type": "linear", "factor": F}: position interpolation. Other scaling types change the RoPE
// frequencies themselves, which the engine does not implement, so they are refused rather than ignored.
absl::Status ReadRopeScaling(const Json& j, ModelConfig* config) {
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return FieldError("rope_scaling", absl::StrCat("must be an object, got ", it->dump()));
  auto type = it->find("type");
  if (type == it->end()) type = it->find("rope_type");
  if (type == it->end() || !type->is_string()) {
    return FieldError("rope_scaling", "needs a string \"type\" (or \"rope_type\")");
  }
  const std::string name = type->get<std::string>();
  if (name == "default") return absl::OkStatus();  // HF's spelling of "no scaling"
  if (name != "linear") {
    return FieldError("rope_scaling", absl::StrCat("type '", name, "' is not supported (only \"linear\")"));
  }
  auto factor = it->find("factor");
  if (factor == it->end() || !factor->is_number()) {
    return FieldError("rope_scaling.factor", "is required as a number for linear scaling");
  }
  config->rope_scaling_factor = static_cast<float>(factor->get<double>());
  return absl::OkStatus();
}

bool HasArchitecture(const Json& j, const std::string& suffix) {
  auto it = j.find("architectures");
  if (it == j.end() || !it->is_array()) return false;
  for (const auto& a : *it) {
    if (a.is_string() && a.get<std::string>().find(suffix) != std::string::npos) return true;
  }
  return false;
}

// LlamaForSequenceClassification: num_labels if written, else the size of id2label, else HF's default of 2
// (HF omits id2label from config.json when it equals the default two labels).
absl::Status ReadNumLabels(const Json& j, ModelConfig* config) {
  const bool explicit_labels = j.contains("num_labels") && !j["num_labels"].is_null();
  const bool seq_cls = HasArchitecture(j, "ForSequenceClassification") ||
                       (!j.contains("architectures") && explicit_labels);
  if (!seq_cls) return absl::OkStatus();
  config->num_labels = 2;
  if (auto it = j.find("id2label"); it != j.end() && it->is_object()) {
    config->num_labels = static_cast<int>(it->size());
  }
  return ReadInt(j, "num_labels", /*required=*/false, &config->num_labels);
}

// Shortest decimal that round-trips the float, as a double (so 1e-5f is written 1e-05, not 9.99999974e-06).
double FloatForJson(float v) {
  char buf[32];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

}  // namespace

absl::Status ModelConfig::Validate() const {
  auto positive = [](const char* field, int v) -> absl::Status {
    if (v <= 0) return FieldError(field, absl::StrCat("must be positive, got ", v));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  RETURN_IF_ERROR(positive("num_hidden_layers", num_hidden_layers));
  RETURN_IF_ERROR(positive("num_attention_heads", num_attention_heads));
  RETURN_IF_ERROR(positive("num_key_value_heads", num_key_value_heads));
  RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  if (hidden_size % num_attention_heads != 0) {
    return FieldError("num_attention_heads", absl::StrCat(num_attention_heads, " does not divide hidden_size ",
                                                          hidden_size));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return FieldError("num_key_value_heads", absl::StrCat(num_key_value_heads,
                                                          " does not divide num_attention_heads ",
                                                          num_attention_heads));
  }
  // RoPE rotates pairs of dimensions within a head.
  if (head_dim() % 2 != 0) {
    return FieldError("num_attention_heads", absl::StrCat("gives an odd head_dim ", head_dim(),
                                                          " (hidden_size / num_attention_heads must be even)"));
  }
  if (!(rms_norm_eps > 0.0f) || !std::isfinite(rms_norm_eps)) {
    return FieldError("rms_norm_eps", absl::StrCat("must be a positive finite number, got ", rms_norm_eps));
  }
  if (!(rope_theta > 0.0f) || !std::isfinite(rope_theta)) {
    return FieldError("rope_theta", absl::StrCat("must be a positive finite number, got ", rope_theta));
  }
  // Linear scaling only ever stretches the context (position i -> i / factor); factor < 1 would compress it.
  if (!(rope_scaling_factor >= 1.0f) || !std::isfinite(rope_scaling_factor)) {
    return FieldError("rope_scaling.factor", absl::StrCat("must be >= 1, got ", rope_scaling_factor));
  }
  if (bos_token_id < 0 || bos_token_id >= vocab_size) {
    return FieldError("bos_token_id", absl::StrCat(bos_token_id, " is outside the vocabulary [0, ", vocab_size, ")"));
  }
  if (eos_token_id < 0 || eos_token_id >= vocab_size) {
    return FieldError("eos_token_id", absl::StrCat(eos_token_id, " is outside the vocabulary [0, ", vocab_size, ")"));
  }
  if (num_labels < 0) return FieldError("num_labels", absl::StrCat("must be >= 0, got ", num_labels));
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text) {
  const Json j = Json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("config.json: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: top level must be a JSON object");
  ModelConfig c;
  RETURN_IF_ERROR(ReadInt(j, "hidden_size", true, &c.hidden_size));
  RETURN_IF_ERROR(ReadInt(j, "intermediate_size", true, &c.intermediate_size));
  RETURN_IF_ERROR(ReadInt(j, "num_hidden_layers", true, &c.num_hidden_layers));
  RETURN_IF_ERROR(ReadInt(j, "num_attention_heads", true, &c.num_attention_heads));
  RETURN_IF_ERROR(ReadInt(j, "vocab_size", true, &c.vocab_size));
  c.num_key_value_heads = c.num_attention_heads;
  RETURN_IF_ERROR(ReadInt(j, "num_key_value_heads", false, &c.num_key_value_heads));
  c.max_position_embeddings = 2048;
  RETURN_IF_ERROR(ReadInt(j, "max_position_embeddings", false, &c.max_position_embeddings));
  RETURN_IF_ERROR(ReadFloat(j, "rms_norm_eps", &c.rms_norm_eps));
  RETURN_IF_ERROR(ReadFloat(j, "rope_theta", &c.rope_theta));
  RETURN_IF_ERROR(ReadRopeScaling(j, &c));
  RETURN_IF_ERROR(ReadBool(j, "tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(ReadTokenId(j, "bos_token_id", &c.bos_token_id));
  RETURN_IF_ERROR(ReadTokenId(j, "eos_token_id", &c.eos_token_id));
  if (auto it = j.find("torch_dtype"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) return FieldError("torch_dtype", absl::StrCat("must be a string, got ", it->dump()));
    c.torch_dtype = it->get<std::string>();
  }
  RETURN_IF_ERROR(ReadNumLabels(j, &c));
  RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto config = ParseModelConfig(ss.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string ModelConfigToJson(const ModelConfig& config) {
  nlohmann::ordered_json j;
  const bool reward = config.num_labels > 0;
  j["architectures"] = {reward ? "LlamaForSequenceClassification" : "LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["hidden_act"] = "silu";
  j["hidden_size"] = config.hidden_size;
  j["intermediate_size"] = config.intermediate_size;
  j["num_hidden_layers"] = config.num_hidden_layers;
  j["num_attention_heads"] = config.num_attention_heads;
  j["num_key_value_heads"] = config.num_key_value_heads;
  j["vocab_size"] = config.vocab_size;
  j["max_position_embeddings"] = config.max_position_embeddings;
  j["rms_norm_eps"] = FloatForJson(config.rms_norm_eps);
  j["rope_theta"] = FloatForJson(config.rope_theta);
  if (config.rope_scaling_factor != 1.0f) {
    j["rope_scaling"] = {{"type", "linear"}, {"factor", FloatForJson(config.rope_scaling_factor)}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["tie_word_embeddings"] = config.tie_word_embeddings;
  j["bos_token_id"] = config.bos_token_id;
  j["eos_token_id"] = config.eos_token_id;
  j["torch_dtype"] = config.torch_dtype;
  if (reward) {
    j["num_labels"] = config.num_labels;
    nlohmann::ordered_json id2label, label2id;
    for (int i = 0; i < config.num_labels; ++i) {
      id2label[std::to_string(i)] = absl::StrCat("LABEL_", i);
      label2id[absl::StrCat("LABEL_", i)] = i;
    }
    j["id2label"] = id2label;
    j["label2id"] = label2id;
  }
  return j.dump(2) + "\n";
}

}  // namespace llama
