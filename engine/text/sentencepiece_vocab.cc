#include "engine/text/sentencepiece_vocab.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace llama {
namespace {

// Protobuf wire types and the field numbers of sentencepiece_model.proto used here.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };
enum ModelField : uint32_t { kPieces = 1, kTrainerSpec = 2, kNormalizerSpec = 3, kDenormalizerSpec = 5 };
enum PieceField : uint32_t { kPiece = 1, kScore = 2, kType = 3 };
enum TrainerField : uint32_t {
  kModelType = 3,
  kVocabSize = 4,
  kTreatWhitespaceAsSuffix = 24,
  kSplitDigits = 25,
  kAllowWhitespaceOnlyPieces = 26,
  kByteFallback = 35,
  kUnkId = 40,
  kBosId = 41,
  kEosId = 42,
  kPadId = 43,
  kUnkSurface = 44,
  kUnkPiece = 45,
  kBosPiece = 46,
  kEosPiece = 47,
  kPadPiece = 48,
};
enum NormalizerField : uint32_t {
  kName = 1,
  kPrecompiledCharsmap = 2,
  kAddDummyPrefix = 3,
  kRemoveExtraWhitespaces = 4,
  kEscapeWhitespaces = 5,
};

class Writer {
 public:
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Tag(uint32_t field, WireType type) { Varint((uint64_t{field} << 3) | type); }
  // int32 fields are varints of the sign-extended 64-bit value (a negative id takes 10 bytes).
  void Int(uint32_t field, int64_t v) {
    Tag(field, kVarint);
    Varint(static_cast<uint64_t>(v));
  }
  void Bool(uint32_t field, bool v) { Int(field, v ? 1 : 0); }
  void Float(uint32_t field, float v) {
    Tag(field, kFixed32);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
  }
  void Bytes(uint32_t field, std::string_view v) {
    Tag(field, kLengthDelimited);
    Varint(v.size());
    out_.append(v.data(), v.size());
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

std::string PieceOrEmpty(const SentencePieceVocab& v, int32_t id) {
  return id >= 0 && id < static_cast<int32_t>(v.pieces.size()) ? v.pieces[id].piece : std::string();
}

std::string TrainerSpec(const SentencePieceVocab& v) {
  Writer w;
  w.Int(kModelType, 2);  // BPE
  w.Int(kVocabSize, static_cast<int64_t>(v.pieces.size()));
  w.Bool(kTreatWhitespaceAsSuffix, v.treat_whitespace_as_suffix);
  w.Bool(kSplitDigits, true);
  w.Bool(kAllowWhitespaceOnlyPieces, true);
  w.Bool(kByteFallback, v.byte_fallback);
  w.Int(kUnkId, v.unk_id);
  w.Int(kBosId, v.bos_id);
  w.Int(kEosId, v.eos_id);
  w.Int(kPadId, v.pad_id);
  w.Bytes(kUnkSurface, v.unk_surface);
  // SentencePiece finds the special ids through these piece names.
  w.Bytes(kUnkPiece, PieceOrEmpty(v, v.unk_id));
  w.Bytes(kBosPiece, PieceOrEmpty(v, v.bos_id));
  w.Bytes(kEosPiece, PieceOrEmpty(v, v.eos_id));
  if (v.pad_id >= 0) w.Bytes(kPadPiece, PieceOrEmpty(v, v.pad_id));
  return w.str();
}

std::string NormalizerSpec(const SentencePieceVocab& v) {
  Writer w;
  w.Bytes(kName, v.normalizer_name);
  w.Bytes(kPrecompiledCharsmap, "");
  w.Bool(kAddDummyPrefix, v.add_dummy_prefix);
  w.Bool(kRemoveExtraWhitespaces, v.remove_extra_whitespaces);
  w.Bool(kEscapeWhitespaces, v.escape_whitespaces);
  return w.str();
}

// A bounds-checked reader of one message's fields.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool done() const { return pos_ == bytes_.size(); }

  absl::Status Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) return Malformed("varint runs past the end");
      const uint8_t b = static_cast<uint8_t>(bytes_[pos_++]);
      *v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return absl::OkStatus();
    }
    return Malformed("varint longer than 10 bytes");
  }
  // The next field's number and wire type, and its payload: *varint for varints, *bytes for the others.
  absl::Status Field(uint32_t* field, uint32_t* type, uint64_t* varint, std::string_view* bytes) {
    uint64_t tag = 0;
    RETURN_IF_ERROR(Varint(&tag));
    *field = static_cast<uint32_t>(tag >> 3);
    *type = static_cast<uint32_t>(tag & 7);
    uint64_t n = 0;
    switch (*type) {
      case kVarint: return Varint(varint);
      case kFixed64: n = 8; break;
      case kFixed32: n = 4; break;
      case kLengthDelimited: RETURN_IF_ERROR(Varint(&n)); break;
      default: return Malformed(absl::StrCat("field ", *field, " has unsupported wire type ", *type));
    }
    if (n > bytes_.size() - pos_) return Malformed(absl::StrCat("field ", *field, " runs past the end"));
    *bytes = bytes_.substr(pos_, n);
    pos_ += n;
    return absl::OkStatus();
  }

  static absl::Status Malformed(const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("malformed SentencePiece model: ", what));
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

float FloatOf(std::string_view fixed32) {
  uint32_t bits = 0;
  for (int i = 3; i >= 0; --i) bits = (bits << 8) | static_cast<uint8_t>(fixed32[i]);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

absl::StatusOr<VocabPiece> ParsePiece(std::string_view bytes) {
  VocabPiece p;
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field = 0, type = 0;
    uint64_t varint = 0;
    std::string_view payload;
    RETURN_IF_ERROR(r.Field(&field, &type, &varint, &payload));
    if (field == kPiece && type == kLengthDelimited) p.piece = std::string(payload);
    if (field == kScore && type == kFixed32) p.score = FloatOf(payload);
    if (field == kType && type == kVarint) p.type = static_cast<PieceType>(static_cast<int32_t>(varint));
  }
  return p;
}

absl::Status ParseTrainer(std::string_view bytes, SentencePieceVocab* v) {
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field = 0, type = 0;
    uint64_t varint = 0;
    std::string_view payload;
    RETURN_IF_ERROR(r.Field(&field, &type, &varint, &payload));
    if (field == kUnkSurface && type == kLengthDelimited) v->unk_surface = std::string(payload);
    if (type != kVarint) continue;
    const int32_t value = static_cast<int32_t>(static_cast<int64_t>(varint));
    if (field == kModelType) v->model_type = value;
    if (field == kByteFallback) v->byte_fallback = varint != 0;
    if (field == kTreatWhitespaceAsSuffix) v->treat_whitespace_as_suffix = varint != 0;
    if (field == kUnkId) v->unk_id = value;
    if (field == kBosId) v->bos_id = value;
    if (field == kEosId) v->eos_id = value;
    if (field == kPadId) v->pad_id = value;
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizer(std::string_view bytes, SentencePieceVocab* v) {
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field = 0, type = 0;
    uint64_t varint = 0;
    std::string_view payload;
    RETURN_IF_ERROR(r.Field(&field, &type, &varint, &payload));
    if (field == kName && type == kLengthDelimited) v->normalizer_name = std::string(payload);
    if (field == kPrecompiledCharsmap && type == kLengthDelimited) v->has_precompiled_charsmap = !payload.empty();
    if (field == kEscapeWhitespaces && type == kVarint) v->escape_whitespaces = varint != 0;
    if (field == kAddDummyPrefix && type == kVarint) v->add_dummy_prefix = varint != 0;
    if (field == kRemoveExtraWhitespaces && type == kVarint) v->remove_extra_whitespaces = varint != 0;
  }
  return absl::OkStatus();
}

}  // namespace

std::string SerializeModelProto(const SentencePieceVocab& vocab) {
  Writer model;
  for (const VocabPiece& p : vocab.pieces) {
    Writer piece;
    piece.Bytes(kPiece, p.piece);
    piece.Float(kScore, p.score);
    piece.Int(kType, static_cast<int32_t>(p.type));
    model.Bytes(kPieces, piece.str());
  }
  model.Bytes(kTrainerSpec, TrainerSpec(vocab));
  model.Bytes(kNormalizerSpec, NormalizerSpec(vocab));
  return model.str();
}

absl::StatusOr<SentencePieceVocab> ParseModelProto(std::string_view bytes) {
  // Defaults of sentencepiece_model.proto where a field is absent.
  SentencePieceVocab v;
  v.model_type = 1;
  v.byte_fallback = false;
  v.add_dummy_prefix = true;
  v.remove_extra_whitespaces = true;
  v.normalizer_name.clear();  // proto default; an absent spec means SentencePiece's identity behavior
  Reader r(bytes);
  while (!r.done()) {
    uint32_t field = 0, type = 0;
    uint64_t varint = 0;
    std::string_view payload;
    RETURN_IF_ERROR(r.Field(&field, &type, &varint, &payload));
    if (type != kLengthDelimited) continue;
    if (field == kPieces) {
      ASSIGN_OR_RETURN(VocabPiece p, ParsePiece(payload));
      v.pieces.push_back(std::move(p));
    } else if (field == kTrainerSpec) {
      RETURN_IF_ERROR(ParseTrainer(payload, &v));
    } else if (field == kNormalizerSpec) {
      RETURN_IF_ERROR(ParseNormalizer(payload, &v));
    } else if (field == kDenormalizerSpec) {
      // Only whether it maps anything matters: the decoder applies its charsmap, which we do not implement.
      SentencePieceVocab denormalizer;
      RETURN_IF_ERROR(ParseNormalizer(payload, &denormalizer));
      v.has_denormalizer_charsmap = denormalizer.has_precompiled_charsmap;
    }
  }
  return v;
}

}  // namespace llama
