// Tokenizer: the LLaMA 2 SentencePiece model (tokenizer.model), and an incremental detokenizer for streaming.
// Encoding and decoding are our own (sentencepiece_bpe.h and the piece table here), written to match
// libsentencepiece exactly; libsentencepiece itself is only the reference of the differential test
// (sentencepiece_model.h), never loaded by the runtime.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace llama {

class SentencePieceBpe;  // engine/text/sentencepiece_bpe.h
struct SentencePieceVocab;  // engine/text/sentencepiece_vocab.h

class Tokenizer {
 public:
  // A tokenizer.model file. NOT_FOUND when missing, INVALID_ARGUMENT when it is malformed or a model
  // SentencePieceBpe does not implement (or SentencePiece itself would refuse).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& model_path);
  // A serialized SentencePiece ModelProto (a tokenizer.model's bytes, or SerializeModelProto of a vocab); `name`
  // says where it came from in errors.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromSerializedModel(const std::string& serialized_model,
                                                                        const std::string& name);
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromVocab(const SentencePieceVocab& vocab,
                                                              const std::string& name);
  ~Tokenizer();

  // Text → ids exactly as SentencePiece encodes it (a leading "▁" is added by the model's normalizer); no BOS/EOS.
  std::vector<int32_t> Encode(std::string_view text) const;
  // Ids → text as SentencePiece's DecodeIds gives it (BOS/EOS dropped); the same code as IncrementalDetokenizer.
  std::string Decode(absl::Span<const int32_t> ids) const;
  // The raw bytes one piece stands for: "▁" → " ", byte pieces <0xNN> → that byte; control pieces → "";
  // the unknown piece → the model's unknown surface (SentencePiece's default " \u2047 ", what Decode prints).
  const std::string& PieceBytes(int32_t id) const;

  // How decoding treats a piece: byte pieces form UTF-8 runs, control pieces print nothing, only a normal piece
  // loses its leading space when it is the first printed piece.
  enum class PieceKind : uint8_t { kNormal, kByte, kControl, kUnknown };
  PieceKind piece_kind(int32_t id) const;

  int vocab_size() const { return static_cast<int>(piece_bytes_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  // Whether Decode drops one leading space of the first printed piece (SentencePiece does when the model adds a
  // dummy prefix or removes extra whitespace).
  bool strips_leading_space() const { return strips_leading_space_; }
  // Whether "the first printed piece" skips pieces that print nothing (a lone "▁" after the strip): SentencePiece
  // does so when the model removes extra whitespace, else the first non-control piece is the first.
  bool first_piece_must_print() const { return first_piece_must_print_; }

 private:
  Tokenizer();
  std::unique_ptr<SentencePieceBpe> encoder_;
  std::vector<std::string> piece_bytes_;  // [vocab] bytes of each piece
  std::vector<PieceKind> piece_kinds_;    // [vocab]
  int32_t bos_id_ = 1;
  int32_t eos_id_ = 2;
  bool strips_leading_space_ = true;
  bool first_piece_must_print_ = false;
};

// Turns a stream of generated ids into text deltas that are always whole UTF-8: bytes of a character split over
// several byte-fallback tokens are held back until the character completes. Matches Tokenizer::Decode of the
// whole sequence (including SentencePiece's removal of the leading space of the first piece).
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  // Returns the new complete text (possibly empty).
  std::string Push(int32_t id);
  // Returns whatever is held back at the end of the stream (invalid trailing bytes become U+FFFD).
  std::string Flush();
  // All text emitted so far.
  const std::string& text() const { return text_; }

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;  // bytes of an incomplete UTF-8 character
  std::string text_;
  bool first_piece_ = true;
};

}  // namespace llama
