// SentencePieceVocab: a SentencePiece model as plain data (pieces with score and type, the special ids, the
// normalizer settings that matter for LLaMA), and its serialized ModelProto in both directions, written against
// the protobuf wire format of sentencepiece_model.proto (field numbers there) without linking protobuf.
//
// Why: the tokenizer (sentencepiece_bpe.h) is built from the parsed pieces and settings; a GGUF file carries a
// llama tokenizer as arrays (tokens, scores, token types, special ids), and assembling the ModelProto from them
// gives the same model as the original tokenizer.model (and one libsentencepiece, the test reference, loads). The
// reverse direction gives a GGUF writer the pieces of a tokenizer.model.
//
// SerializeModelProto writes a BPE model with byte fallback and the trainer/normalizer settings of the LLaMA 2
// tokenizer.model (checked against it in tests/engine/text/sentencepiece_vocab_test.cc): normalizer "identity"
// with no character map, add_dummy_prefix, no removal of extra whitespace, whitespace escaped as "▁", whitespace-
// only pieces allowed (this changes how BPE splits runs of spaces), whitespace not a suffix.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace llama {

// SentencePiece's piece types (sentencepiece_model.proto; GGUF's tokenizer.ggml.token_type uses the same values).
enum class PieceType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct VocabPiece {
  std::string piece;  // UTF-8, "▁" for a space; byte pieces are "<0xNN>"
  float score = 0;
  PieceType type = PieceType::kNormal;
};

struct SentencePieceVocab {
  std::vector<VocabPiece> pieces;  // [vocab] indexed by id
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;  // -1: none
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  bool byte_fallback = true;
  // Only a BPE model is written; ParseModelProto reports what the file says (1 unigram, 2 BPE, 3 word, 4 char).
  int32_t model_type = 2;
  // Read by ParseModelProto so the encoder (sentencepiece_bpe.h) can refuse what it does not implement; written
  // as these defaults (the LLaMA 2 values).
  std::string normalizer_name = "identity";
  bool has_precompiled_charsmap = false;  // a non-empty normalizer_spec.precompiled_charsmap (NFKC etc.)
  bool has_denormalizer_charsmap = false;  // a non-empty denormalizer_spec.precompiled_charsmap
  bool escape_whitespaces = true;
  bool treat_whitespace_as_suffix = false;
  std::string unk_surface = " \xE2\x81\x87 ";  // what Decode prints for the unknown piece (" ⁇ ")
};

std::string SerializeModelProto(const SentencePieceVocab& vocab);

// The pieces, ids, model type and normalizer flags of a serialized ModelProto (e.g. a tokenizer.model's bytes).
// INVALID_ARGUMENT when the bytes are not a well-formed message.
absl::StatusOr<SentencePieceVocab> ParseModelProto(std::string_view bytes);

}  // namespace llama
