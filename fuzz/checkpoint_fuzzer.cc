// A Hugging Face model directory (engine/model/{config,safetensors,checkpoint}.h). The input is config.json, one NUL
// byte, then model.safetensors (no NUL: the whole input is config.json and there is no checkpoint file). Checked:
// - ParseModelConfig accepts or refuses with INVALID_ARGUMENT; an accepted config passes Validate and survives
//   ModelConfigToJson → ParseModelConfig unchanged.
// - ParseSafetensorsHeader on the file image accepts or refuses with INVALID_ARGUMENT; accepted tensors lie inside
//   the data buffer, sorted, tiling it exactly, each with the byte size its dtype and shape give.
// - The same bytes as a directory through Checkpoint::Open, and every 1-D/2-D tensor read in full (ReadRows).
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/checkpoint.h"
#include "engine/model/config.h"
#include "engine/model/safetensors.h"
#include "fuzz/fuzz_util.h"

namespace llama {
namespace {

void CheckConfig(const std::string& text) {
  auto config = ParseModelConfig(text);
  if (!config.ok()) {
    if (!absl::IsInvalidArgument(config.status())) fuzz::Fail("ParseModelConfig: " + config.status().ToString());
    return;
  }
  if (!config->Validate().ok()) fuzz::Fail("an accepted config fails Validate: " + config->Validate().ToString());
  const std::string json = ModelConfigToJson(*config);
  auto again = ParseModelConfig(json);
  if (!again.ok()) fuzz::Fail("ModelConfigToJson output refused: " + again.status().ToString() + "\n" + json);
  const ModelConfig& a = *config;
  const ModelConfig& b = *again;
  const bool same = a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
                    a.num_hidden_layers == b.num_hidden_layers && a.num_attention_heads == b.num_attention_heads &&
                    a.num_key_value_heads == b.num_key_value_heads && a.vocab_size == b.vocab_size &&
                    a.max_position_embeddings == b.max_position_embeddings && a.rms_norm_eps == b.rms_norm_eps &&
                    a.rope_theta == b.rope_theta && a.rope_scaling_factor == b.rope_scaling_factor &&
                    a.tie_word_embeddings == b.tie_word_embeddings && a.bos_token_id == b.bos_token_id &&
                    a.eos_token_id == b.eos_token_id && a.torch_dtype == b.torch_dtype &&
                    a.num_labels == b.num_labels;
  if (!same) fuzz::Fail("config changed through ModelConfigToJson:\n" + json);
}

int64_t DtypeBytes(SafetensorsDtype dtype) { return dtype == SafetensorsDtype::kF32 ? 4 : 2; }

// Returns whether the header was accepted.
bool CheckSafetensors(const std::string& bytes) {
  size_t data_offset = 0;
  std::map<std::string, std::string> metadata;
  auto tensors = ParseSafetensorsHeader(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "fuzz", &data_offset,
      &metadata);
  if (!tensors.ok()) {
    if (!absl::IsInvalidArgument(tensors.status())) fuzz::Fail("ParseSafetensorsHeader: " + tensors.status().ToString());
    return false;
  }
  if (data_offset < 8 || data_offset > bytes.size()) fuzz::Fail(absl::StrCat("data offset ", data_offset));
  int64_t next = 0;
  for (const SafetensorsTensorInfo& t : *tensors) {
    if (t.begin != next) fuzz::Fail(absl::StrCat(t.name, ": begins at ", t.begin, ", expected ", next));
    if (t.end - t.begin != t.num_elements() * DtypeBytes(t.dtype)) {
      fuzz::Fail(absl::StrCat(t.name, ": ", t.end - t.begin, " bytes for ", t.num_elements(), " elements"));
    }
    next = t.end;
  }
  if (next != static_cast<int64_t>(bytes.size() - data_offset)) {
    fuzz::Fail(absl::StrCat("tensors end at ", next, " of a ", bytes.size() - data_offset, "-byte data buffer"));
  }
  return true;
}

// One model directory per process, rewritten for every input.
const std::string& ModelDir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr ? tmp : "/tmp") + "/checkpoint_fuzzer.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) fuzz::Fail("mkdtemp failed");
    return pattern;
  }();
  return dir;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fuzz::Fail("cannot write " + path);
}

void CheckCheckpoint(const std::string& config, const std::string& safetensors, bool has_file) {
  const std::string& dir = ModelDir();
  WriteFile(dir + "/config.json", config);
  if (has_file) {
    WriteFile(dir + "/model.safetensors", safetensors);
  } else {
    unlink((dir + "/model.safetensors").c_str());
  }
  auto checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) {
    if (absl::IsInternal(checkpoint.status()) || absl::IsUnknown(checkpoint.status())) {
      fuzz::Fail("Checkpoint::Open: " + checkpoint.status().ToString());
    }
    return;
  }
  for (const std::string& name : (*checkpoint)->TensorNames()) {
    auto info = (*checkpoint)->Info(name);
    if (!info.ok() || info->shape.empty() || info->shape.size() > 2) continue;
    std::vector<float> rows(static_cast<size_t>(info->num_elements()));
    absl::Status read = (*checkpoint)->ReadRows(name, 0, info->rows(), rows.data());
    if (!read.ok()) fuzz::Fail("ReadRows of an accepted tensor " + name + ": " + read.ToString());
    (*checkpoint)->Release(name);
  }
}

}  // namespace
}  // namespace llama

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string config = input.substr(0, nul);
  const std::string safetensors = nul == std::string::npos ? "" : input.substr(nul + 1);
  llama::CheckConfig(config);
  const bool header_ok = nul != std::string::npos && llama::CheckSafetensors(safetensors);
  // The directory round only when both files could be accepted: a refused one is already covered above.
  if (header_ok && llama::ParseModelConfig(config).ok()) llama::CheckCheckpoint(config, safetensors, true);
  return 0;
}
