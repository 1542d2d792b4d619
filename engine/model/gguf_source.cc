#include "engine/model/gguf_source.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/model/gguf_llama.h"

namespace llama {
namespace {

std::string Shape(const std::vector<int64_t>& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

StoredDtype StoredOf(GgmlType type) {
  switch (type) {
    case GgmlType::kF16: return StoredDtype::kF16;
    case GgmlType::kBF16: return StoredDtype::kBF16;
    case GgmlType::kQ8_0: return StoredDtype::kQ8_0;
    case GgmlType::kQ4_0: return StoredDtype::kQ4_0;
    default: return StoredDtype::kF32;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<GgufWeightSource>> GgufWeightSource::Open(const std::string& path) {
  ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(path));
  std::unique_ptr<GgufWeightSource> source(new GgufWeightSource(std::move(file)));
  ASSIGN_OR_RETURN(source->config_, GgufModelConfig(source->file_));
  RETURN_IF_ERROR(source->Index());
  return source;
}

// Maps every tensor the config needs to its GGUF tensor, checking presence, type and shape.
absl::Status GgufWeightSource::Index() {
  auto error = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(file_.path(), ": gguf: ", what));
  };
  RETURN_IF_ERROR(
      CheckLayerCount(config_, file_.tensors().size(), absl::StrCat(file_.path(), ": gguf: llama.block_count")));
  for (const TensorSpec& spec : ModelTensorSpecs(config_)) {
    const std::string gguf_name = GgufTensorName(spec.name);
    const GgufTensorInfo* t = gguf_name.empty() ? nullptr : file_.FindTensor(gguf_name);
    if (t == nullptr) {
      return error(absl::StrCat("missing tensor '", gguf_name.empty() ? "?" : gguf_name, "' (", spec.name,
                                ", shape ", Shape(spec.shape), ")"));
    }
    if (!IsReadableGgmlType(t->type)) {
      return error(absl::StrCat("tensor '", gguf_name, "' has type ", GgmlTraits(t->type).name,
                                "; readable types are F32, F16, BF16, Q8_0, Q4_0"));
    }
    std::vector<int64_t> shape(t->dims.rbegin(), t->dims.rend());  // ggml dims run innermost first
    if (shape != spec.shape) {
      return error(absl::StrCat("tensor '", gguf_name, "' has dims ", Shape(t->dims), " (shape ", Shape(shape),
                                "), but the metadata implies ", spec.name, " of shape ", Shape(spec.shape)));
    }
    Entry e{t, TensorInfo{spec.shape, StoredOf(t->type)}, 0, 0};
    const GgmlTypeTraits& traits = GgmlTraits(t->type);
    e.row_bytes = e.info.cols() / traits.block_size * traits.block_bytes;
    if (const int heads = PermutedHeads(spec.name, config_); heads > 0) e.head_dim = config_.head_dim();
    entries_.emplace(spec.name, e);
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorInfo> GgufWeightSource::Info(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat(file_.path(), " has no tensor for '", name, "'"));
  return it->second.info;
}

absl::Status GgufWeightSource::ReadRows(const std::string& name, int64_t row_begin, int64_t row_end,
                                        float* out) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat(file_.path(), " has no tensor for '", name, "'"));
  const Entry& e = it->second;
  const int64_t rows = e.info.rows(), cols = e.info.cols();
  if (row_begin < 0 || row_end < row_begin || row_end > rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("rows [", row_begin, ", ", row_end, ") of '", name, "' outside [0, ", rows, ")"));
  }
  const uint8_t* data = file_.TensorData(*e.tensor);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t stored_row = e.head_dim > 0 ? InterleavedRow(r, e.head_dim) : r;
    ToFloat32(e.tensor->type, data + stored_row * e.row_bytes, cols, out + (r - row_begin) * cols);
  }
  return absl::OkStatus();
}

void GgufWeightSource::Release(const std::string& name) const {
  if (auto it = entries_.find(name); it != entries_.end()) file_.ReleasePages(*it->second.tensor);
}

}  // namespace llama
