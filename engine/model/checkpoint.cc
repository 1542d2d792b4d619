#include "engine/model/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

// Reads model.safetensors.index.json: tensor name -> shard file name (relative to the model directory).
absl::StatusOr<std::map<std::string, std::string>> ReadWeightMap(const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", index_path));
  std::stringstream ss;
  ss << in.rdbuf();
  const auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(absl::StrCat(index_path, ": not a JSON object"));
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": missing object field 'weight_map'"));
  }
  std::map<std::string, std::string> out;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    // Shard names are plain file names next to the index; anything with a path separator could escape the dir.
    if (!it->is_string() || it->get<std::string>().empty() ||
        it->get<std::string>().find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map['", it.key(), "'] must be a file name, got ", it->dump()));
    }
    out[it.key()] = it->get<std::string>();
  }
  return out;
}

}  // namespace

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& model_dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ASSIGN_OR_RETURN(ckpt->config_, LoadModelConfig(model_dir));
  const std::string single = model_dir + "/model.safetensors";
  const std::string index = model_dir + "/model.safetensors.index.json";
  if (std::filesystem::exists(single)) {
    ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(single));
    ckpt->files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
    for (const auto& t : ckpt->files_.back()->tensors()) ckpt->owner_[t.name] = ckpt->files_.back().get();
    RETURN_IF_ERROR(CheckLayerCount(ckpt->config_, ckpt->owner_.size(),
                                     absl::StrCat(model_dir, ": config.json: num_hidden_layers")));
    return ckpt;
  }
  if (!std::filesystem::exists(index)) {
    return absl::NotFoundError(absl::StrCat(model_dir, ": neither model.safetensors nor model.safetensors.index.json"));
  }
  ASSIGN_OR_RETURN(auto weight_map, ReadWeightMap(index));
  std::map<std::string, const SafetensorsFile*> shards;
  for (const auto& [name, shard] : weight_map) {
    if (!shards.count(shard)) {
      ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(model_dir + "/" + shard));
      ckpt->files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
      shards[shard] = ckpt->files_.back().get();
    }
    if (shards[shard]->Find(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(index, ": weight_map puts tensor '", name, "' in ", shard, ", which does not contain it"));
    }
    ckpt->owner_[name] = shards[shard];
  }
  RETURN_IF_ERROR(CheckLayerCount(ckpt->config_, ckpt->owner_.size(),
                                   absl::StrCat(model_dir, ": config.json: num_hidden_layers")));
  return ckpt;
}

const SafetensorsTensorInfo* Checkpoint::Find(const std::string& name) const {
  auto it = owner_.find(name);
  return it == owner_.end() ? nullptr : it->second->Find(name);
}

absl::StatusOr<TensorInfo> Checkpoint::Info(const std::string& name) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("checkpoint has no tensor '", name, "'"));
  TensorInfo out;
  out.shape = info->shape;
  switch (info->dtype) {
    case SafetensorsDtype::kF32: out.stored = StoredDtype::kF32; break;
    case SafetensorsDtype::kF16: out.stored = StoredDtype::kF16; break;
    case SafetensorsDtype::kBF16: out.stored = StoredDtype::kBF16; break;
  }
  return out;
}

absl::Status Checkpoint::ReadRows(const std::string& name, int64_t row_begin, int64_t row_end, float* out) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) return absl::NotFoundError(absl::StrCat("checkpoint has no tensor '", name, "'"));
  if (info->shape.empty() || info->shape.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' has shape ", ShapeToString(info->shape), ": not a vector or a matrix"));
  }
  const int64_t rows = info->shape.size() == 1 ? 1 : info->shape[0];
  const int64_t cols = info->shape.back();
  if (row_begin < 0 || row_end < row_begin || row_end > rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows [", row_begin, ", ", row_end, ") of '", name, "' outside [0, ", rows, ")"));
  }
  owner_.at(name)->ReadElementsF32(*info, row_begin * cols, row_end * cols, out);
  return absl::OkStatus();
}

void Checkpoint::Release(const std::string& name) const {
  if (const SafetensorsTensorInfo* info = Find(name)) owner_.at(name)->ReleasePages(*info);
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : owner_) names.push_back(name);
  return names;
}

}  // namespace llama
