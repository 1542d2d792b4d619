// SentencePieceBpe: our own encoder for a SentencePiece BPE model (the LLaMA 2 tokenizer.model), written to give
// exactly the ids libsentencepiece 0.1.97 gives, so the runtime never loads libsentencepiece (its module needs
// RTLD_DEEPBIND, which ASan and TSan refuse: sentencepiece_api.h). Checked against the module on the shared cases
// and 20000+ random strings (tests/engine/text/sentencepiece_differential_test.cc).
//
// What SentencePiece does, and so what this does:
// - Normalization (identity normalizer only): every byte that does not start a valid UTF-8 character (utf8.h's
//   rule) becomes one U+FFFD, valid characters are kept; optional removal of leading, trailing and repeated spaces;
//   the dummy prefix "▁" in front (add_dummy_prefix; not for empty text); each ' ' becomes "▁" (escape_whitespaces).
// - Segmentation: the normalized text is split into characters, except that the longest user-defined piece
//   starting at a position is one frozen symbol that never merges.
// - Merges: repeatedly the adjacent pair whose concatenation is a piece of type normal, user-defined or unused with
//   the highest score is merged (ties: the leftmost pair), through a priority queue with lazy deletion: O(n log n).
//   Control, unknown and byte pieces are never merge results.
// - A final symbol that is an unused piece is split back into the two symbols it was last merged from (recursively).
// - A final symbol that is no piece is the unknown id, or with byte_fallback one byte piece <0xNN> per UTF-8 byte
//   (an invalid input byte therefore comes out as the three bytes of U+FFFD unless the vocab has "\uFFFD").
//
// Refused (INVALID_ARGUMENT, naming the setting): a model type other than BPE, a normalizer other than identity or
// any precompiled character map, a denormalizer map, treat_whitespace_as_suffix; and what SentencePiece refuses at
// load: empty or duplicate pieces, no unknown piece (or two), byte pieces without byte_fallback.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/text/sentencepiece_vocab.h"

namespace llama {

class SentencePieceBpe {
 public:
  static absl::StatusOr<std::unique_ptr<SentencePieceBpe>> Create(const SentencePieceVocab& vocab);

  // Text → ids (no BOS/EOS). Any bytes are accepted.
  std::vector<int32_t> Encode(absl::string_view text) const;
  // The normalized text Encode segments (exposed for tests).
  std::string Normalize(absl::string_view text) const;

 private:
  SentencePieceBpe() = default;
  // SentencePiece's PieceToId: the reserved pieces (control, unknown, byte) first, then the others; unknown id if
  // neither has it.
  int32_t PieceToId(absl::string_view piece) const;
  // Length of the longest user-defined piece at the start of `s`, 0 if none.
  size_t UserDefinedPrefix(absl::string_view s) const;

  absl::flat_hash_map<absl::string_view, int32_t> pieces_;    // normal, user-defined, unused → id
  absl::flat_hash_map<absl::string_view, int32_t> reserved_;  // control, unknown, byte → id
  std::vector<std::string> piece_text_;                       // [vocab] the keys above point into these
  std::vector<float> scores_;                                 // [vocab]
  std::vector<PieceType> types_;                              // [vocab]
  std::array<int32_t, 256> byte_ids_{};                       // <0xNN> piece of each byte (unk id if missing)
  size_t max_user_defined_length_ = 0;                        // 0: the model has no user-defined pieces
  bool has_unused_ = false;
  int32_t unk_id_ = 0;
  bool byte_fallback_ = false;
  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = false;
  bool escape_whitespaces_ = true;
};

}  // namespace llama
