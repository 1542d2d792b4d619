#include "convert/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "convert/ggml_quantize.h"
#include "engine/model/gguf_llama.h"

namespace llama {
namespace {

constexpr uint32_t kMagic = 0x46554747;

void PutLe(uint64_t v, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void PutString(const std::string& s, std::string* out) {
  PutLe(s.size(), 8, out);
  out->append(s);
}

int ScalarBytes(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    default:
      return 8;
  }
}

void PutValue(const GgufWriteValue& v, std::string* out) {
  if (v.type == GgufValueType::kString) {
    PutString(v.str, out);
  } else if (v.type == GgufValueType::kArray) {
    PutLe(static_cast<uint32_t>(v.element_type), 4, out);
    PutLe(v.elements.size(), 8, out);
    for (const GgufWriteValue& e : v.elements) PutValue(e, out);
  } else {
    PutLe(v.bits, ScalarBytes(v.type), out);
  }
}

uint64_t AlignUp(uint64_t x, uint64_t alignment) { return (x + alignment - 1) / alignment * alignment; }

int64_t TensorBytesOf(const GgufWriter::Tensor& t) {
  const GgmlTypeTraits& traits = GgmlTraits(t.type);
  int64_t n = 1;
  for (int64_t d : t.dims) n *= d;
  return n / traits.block_size * traits.block_bytes;
}

// Rows of `cols` fp32 values → the bytes of `type`.
std::string EncodeRows(const std::vector<float>& values, GgmlType type) {
  const int64_t n = static_cast<int64_t>(values.size());
  std::string out(static_cast<size_t>(n / GgmlTraits(type).block_size * GgmlTraits(type).block_bytes), '\0');
  uint8_t* p = reinterpret_cast<uint8_t*>(out.data());
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(p, values.data(), values.size() * 4);  // little-endian hosts only, as everywhere here
      break;
    case GgmlType::kF16:
    case GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = type == GgmlType::kF16 ? FloatToHalf(values[i]) : FloatToBFloat16(values[i]);
        p[2 * i] = static_cast<uint8_t>(h);
        p[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
      break;
    case GgmlType::kQ8_0: QuantizeQ8_0(values.data(), n, p); break;
    case GgmlType::kQ4_0: QuantizeQ4_0(values.data(), n, p); break;
    default: CHECK(false);
  }
  return out;
}

// One tensor of a llama model in GGUF order: q/k rows moved to the interleaved order, then encoded.
absl::StatusOr<std::string> LlamaTensorBytes(const WeightSource& source, const std::string& hf_name, GgmlType type) {
  ASSIGN_OR_RETURN(TensorInfo info, source.Info(hf_name));
  const int64_t rows = info.rows(), cols = info.cols();
  std::vector<float> hf(static_cast<size_t>(rows * cols));
  RETURN_IF_ERROR(source.ReadRows(hf_name, 0, rows, hf.data()));
  source.Release(hf_name);
  const int heads = PermutedHeads(hf_name, source.config());
  if (heads == 0) return EncodeRows(hf, type);
  std::vector<float> stored(hf.size());
  const int head_dim = static_cast<int>(rows / heads);
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(&stored[InterleavedRow(r, head_dim) * cols], &hf[r * cols], static_cast<size_t>(cols) * 4);
  }
  return EncodeRows(stored, type);
}

uint32_t FileType(GgmlType type) {
  switch (type) {
    case GgmlType::kF16: return 1;    // MOSTLY_F16
    case GgmlType::kQ4_0: return 2;   // MOSTLY_Q4_0
    case GgmlType::kQ8_0: return 7;   // MOSTLY_Q8_0
    case GgmlType::kBF16: return 32;  // MOSTLY_BF16 (llama.cpp's llama_ftype)
    default: return 0;                // ALL_F32
  }
}

void SetLlamaMetadata(const ModelConfig& c, const LlamaGgufOptions& options, GgufWriter* w) {
  w->Set(kGgufArchitectureKey, GgufWriteValue::Str("llama"));
  if (!options.name.empty()) w->Set("general.name", GgufWriteValue::Str(options.name));
  w->Set("general.file_type", GgufWriteValue::U32(FileType(options.matrix_type)));
  if (options.matrix_type == GgmlType::kQ8_0 || options.matrix_type == GgmlType::kQ4_0) {
    w->Set("general.quantization_version", GgufWriteValue::U32(2));
  }
  w->Set("llama.vocab_size", GgufWriteValue::U32(c.vocab_size));
  w->Set("llama.context_length", GgufWriteValue::U32(c.max_position_embeddings));
  w->Set("llama.embedding_length", GgufWriteValue::U32(c.hidden_size));
  w->Set("llama.block_count", GgufWriteValue::U32(c.num_hidden_layers));
  w->Set("llama.feed_forward_length", GgufWriteValue::U32(c.intermediate_size));
  w->Set("llama.rope.dimension_count", GgufWriteValue::U32(c.head_dim()));
  w->Set("llama.attention.head_count", GgufWriteValue::U32(c.num_attention_heads));
  w->Set("llama.attention.head_count_kv", GgufWriteValue::U32(c.num_key_value_heads));
  w->Set("llama.attention.layer_norm_rms_epsilon", GgufWriteValue::F32(c.rms_norm_eps));
  w->Set("llama.rope.freq_base", GgufWriteValue::F32(c.rope_theta));
  if (c.rope_scaling_factor != 1.0f) {
    w->Set("llama.rope.scaling.type", GgufWriteValue::Str("linear"));
    w->Set("llama.rope.scaling.factor", GgufWriteValue::F32(c.rope_scaling_factor));
  }
}

}  // namespace

GgufWriteValue GgufWriteValue::Scalar(GgufValueType type, uint64_t bits) {
  GgufWriteValue v;
  v.type = type;
  v.bits = bits;
  return v;
}

GgufWriteValue GgufWriteValue::F32(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return Scalar(GgufValueType::kFloat32, bits);
}

GgufWriteValue GgufWriteValue::Str(std::string s) {
  GgufWriteValue v;
  v.type = GgufValueType::kString;
  v.str = std::move(s);
  return v;
}

GgufWriteValue GgufWriteValue::Array(GgufValueType element_type, std::vector<GgufWriteValue> elements) {
  GgufWriteValue v;
  v.type = GgufValueType::kArray;
  v.element_type = element_type;
  v.elements = std::move(elements);
  return v;
}

GgufWriter::GgufWriter(uint32_t version, uint32_t alignment) : version_(version), alignment_(alignment) {}

void GgufWriter::Set(const std::string& key, GgufWriteValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::Remove(const std::string& key) {
  std::erase_if(metadata_, [&](const auto& kv) { return kv.first == key; });
}

void GgufWriter::AddTensor(Tensor tensor) { tensors_.push_back(std::move(tensor)); }

void GgufWriter::RemoveTensor(const std::string& name) {
  std::erase_if(tensors_, [&](const Tensor& t) { return t.name == name; });
}

GgufWriter::Tensor* GgufWriter::FindTensor(const std::string& name) {
  for (Tensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

absl::Status GgufWriter::Write(const std::string& path) const {
  std::vector<std::pair<std::string, GgufWriteValue>> metadata = metadata_;
  const bool has_alignment = std::any_of(metadata.begin(), metadata.end(),
                                         [](const auto& kv) { return kv.first == kGgufAlignmentKey; });
  if (alignment_ != kGgufDefaultAlignment && !has_alignment) {
    metadata.emplace_back(kGgufAlignmentKey, GgufWriteValue::U32(alignment_));
  }
  std::string head;
  PutLe(kMagic, 4, &head);
  PutLe(version_, 4, &head);
  PutLe(tensors_.size(), 8, &head);
  PutLe(metadata.size(), 8, &head);
  for (const auto& [key, value] : metadata) {
    PutString(key, &head);
    PutLe(static_cast<uint32_t>(value.type), 4, &head);
    PutValue(value, &head);
  }
  std::vector<uint64_t> offsets;
  uint64_t cursor = 0;
  for (const Tensor& t : tensors_) {
    offsets.push_back(AlignUp(cursor, alignment_));
    cursor = offsets.back() + TensorBytesOf(t);
    PutString(t.name, &head);
    PutLe(t.dims.size(), 4, &head);
    for (int64_t d : t.dims) PutLe(static_cast<uint64_t>(d), 8, &head);
    PutLe(static_cast<uint32_t>(t.type), 4, &head);
    PutLe(offsets.back(), 8, &head);
  }
  head.append(AlignUp(head.size(), alignment_) - head.size(), '\0');
  const std::string tmp = path + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InvalidArgumentError(absl::StrCat("cannot create ", tmp));
  out.write(head.data(), static_cast<std::streamsize>(head.size()));
  uint64_t written = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    ASSIGN_OR_RETURN(std::string bytes, t.bytes());
    if (static_cast<int64_t>(bytes.size()) != TensorBytesOf(t)) {
      return absl::InvalidArgumentError(absl::StrCat("GgufWriter: tensor '", t.name, "' has ", bytes.size(),
                                                     " bytes, its dims and type need ", TensorBytesOf(t)));
    }
    out << std::string(offsets[i] - written, '\0');
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    written = offsets[i] + bytes.size();
  }
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat("write failed: ", tmp));
  out.close();
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("rename ", tmp, " -> ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void SetLlamaTokenizer(const SentencePieceVocab& vocab, GgufWriter* w) {
  std::vector<GgufWriteValue> tokens, scores, types;
  for (const VocabPiece& p : vocab.pieces) {
    tokens.push_back(GgufWriteValue::Str(p.piece));
    scores.push_back(GgufWriteValue::F32(p.score));
    types.push_back(GgufWriteValue::I32(static_cast<int32_t>(p.type)));
  }
  w->Set("tokenizer.ggml.model", GgufWriteValue::Str("llama"));
  w->Set("tokenizer.ggml.tokens", GgufWriteValue::Array(GgufValueType::kString, std::move(tokens)));
  w->Set("tokenizer.ggml.scores", GgufWriteValue::Array(GgufValueType::kFloat32, std::move(scores)));
  w->Set("tokenizer.ggml.token_type", GgufWriteValue::Array(GgufValueType::kInt32, std::move(types)));
  w->Set("tokenizer.ggml.bos_token_id", GgufWriteValue::U32(vocab.bos_id));
  w->Set("tokenizer.ggml.eos_token_id", GgufWriteValue::U32(vocab.eos_id));
  w->Set("tokenizer.ggml.unknown_token_id", GgufWriteValue::U32(vocab.unk_id));
  if (vocab.pad_id >= 0) w->Set("tokenizer.ggml.padding_token_id", GgufWriteValue::U32(vocab.pad_id));
  w->Set("tokenizer.ggml.add_space_prefix", GgufWriteValue::Bool(vocab.add_dummy_prefix));
}

absl::StatusOr<GgmlType> ParseGgufMatrixType(const std::string& name) {
  if (name == "f32") return GgmlType::kF32;
  if (name == "f16") return GgmlType::kF16;
  if (name == "bf16") return GgmlType::kBF16;
  if (name == "q8_0") return GgmlType::kQ8_0;
  if (name == "q4_0") return GgmlType::kQ4_0;
  return absl::InvalidArgumentError(absl::StrCat("GGUF type must be f32, f16, bf16, q8_0 or q4_0, got '", name, "'"));
}

absl::StatusOr<GgufWriter> LlamaGguf(const WeightSource& source, const SentencePieceVocab& vocab,
                                     const LlamaGgufOptions& options) {
  const ModelConfig& c = source.config();
  if (c.num_labels > 0) return absl::InvalidArgumentError("a reward model (score head) has no GGUF llama layout");
  RETURN_IF_ERROR(CheckWeightShapes(source));
  GgufWriter w(options.version, options.alignment);
  SetLlamaMetadata(c, options, &w);
  SetLlamaTokenizer(vocab, &w);
  for (const TensorSpec& spec : ModelTensorSpecs(c)) {
    const GgmlType type = spec.shape.size() == 2 ? options.matrix_type : GgmlType::kF32;
    if (spec.shape.back() % GgmlTraits(type).block_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(spec.name, " has rows of ", spec.shape.back(), " values, not a multiple of ",
                                                     GgmlTraits(type).name, "'s block of ", GgmlTraits(type).block_size));
    }
    const std::string hf_name = spec.name;
    w.AddTensor({GgufTensorName(spec.name), std::vector<int64_t>(spec.shape.rbegin(), spec.shape.rend()), type,
                 [&source, hf_name, type] { return LlamaTensorBytes(source, hf_name, type); }});
  }
  return w;
}

absl::Status WriteLlamaGguf(const std::string& path, const WeightSource& source, const SentencePieceVocab& vocab,
                            const LlamaGgufOptions& options) {
  ASSIGN_OR_RETURN(GgufWriter w, LlamaGguf(source, vocab, options));
  return w.Write(path);
}

}  // namespace llama
