#include "engine/text/sentencepiece_bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "base/utf8.h"

namespace llama {
namespace {

constexpr absl::string_view kSpaceSymbol = "\xE2\x96\x81";  // "▁"
constexpr absl::string_view kReplacementChar = "\xEF\xBF\xBD";

// SentencePiece's OneCharLen: the length a UTF-8 lead byte announces, without validation (the normalized text is
// valid UTF-8 by then). Clipped to the bytes left.
size_t OneCharLen(absl::string_view s) {
  static constexpr uint8_t kLength[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  const size_t n = kLength[static_cast<uint8_t>(s[0]) >> 4];
  return n < s.size() ? n : s.size();
}

struct Symbol {
  int prev;
  int next;
  bool frozen;  // a user-defined piece: never merged
  absl::string_view piece;
};

// A candidate merge of symbols[left] and symbols[right]; stale once either side changed, which the size tells
// (symbols only grow, or become empty when merged into their left neighbour).
struct Candidate {
  float score;
  int left;
  int right;
  size_t size;
};

// Highest score first; among equal scores the leftmost pair (SentencePiece's SymbolPairComparator).
struct CandidateOrder {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("SentencePiece model: ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceBpe>> SentencePieceBpe::Create(const SentencePieceVocab& vocab) {
  if (vocab.model_type != 2) {
    return Invalid(absl::StrCat("model type ", vocab.model_type, " is not BPE (2); only BPE is implemented"));
  }
  if (vocab.has_precompiled_charsmap || !(vocab.normalizer_name.empty() || vocab.normalizer_name == "identity")) {
    return Invalid(absl::StrCat("normalizer '", vocab.normalizer_name, "'",
                                vocab.has_precompiled_charsmap ? " with a precompiled character map" : "",
                                " is not implemented (only 'identity')"));
  }
  if (vocab.has_denormalizer_charsmap) return Invalid("a denormalizer character map is not implemented");
  if (vocab.treat_whitespace_as_suffix) return Invalid("treat_whitespace_as_suffix is not implemented");

  std::unique_ptr<SentencePieceBpe> bpe(new SentencePieceBpe());
  const size_t n = vocab.pieces.size();
  // All texts first: the maps' keys point into them, so the vector must not reallocate afterwards.
  bpe->piece_text_.reserve(n);
  for (const VocabPiece& p : vocab.pieces) bpe->piece_text_.push_back(p.piece);
  bpe->scores_.resize(n);
  bpe->types_.resize(n);
  int unknown_pieces = 0;
  for (size_t i = 0; i < n; ++i) {
    const VocabPiece& p = vocab.pieces[i];
    const int32_t id = static_cast<int32_t>(i);
    const int type = static_cast<int>(p.type);
    if (type < 1 || type > 6) return Invalid(absl::StrCat("piece ", i, " has unknown type ", type));
    if (p.piece.empty()) return Invalid(absl::StrCat("piece ", i, " is empty"));
    bpe->scores_[i] = p.score;
    bpe->types_[i] = p.type;
    const bool is_normal =
        p.type == PieceType::kNormal || p.type == PieceType::kUserDefined || p.type == PieceType::kUnused;
    auto& map = is_normal ? bpe->pieces_ : bpe->reserved_;
    if (!map.emplace(absl::string_view(bpe->piece_text_[i]), id).second) {
      return Invalid(absl::StrCat("piece '", p.piece, "' (", i, ") is already defined"));
    }
    switch (p.type) {
      case PieceType::kUnknown:
        ++unknown_pieces;
        bpe->unk_id_ = id;
        break;
      case PieceType::kUserDefined:
        bpe->max_user_defined_length_ = std::max(bpe->max_user_defined_length_, p.piece.size());
        break;
      case PieceType::kUnused: bpe->has_unused_ = true; break;
      case PieceType::kByte:
        if (!vocab.byte_fallback) {
          return Invalid(absl::StrCat("byte piece '", p.piece, "' (", i, ") although byte_fallback is off"));
        }
        break;
      default: break;
    }
  }
  if (unknown_pieces == 0) return Invalid("no unknown piece");
  if (unknown_pieces > 1) return Invalid("more than one unknown piece");
  bpe->byte_fallback_ = vocab.byte_fallback;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    bpe->byte_ids_[b] = bpe->PieceToId(name);
  }
  bpe->add_dummy_prefix_ = vocab.add_dummy_prefix;
  bpe->remove_extra_whitespaces_ = vocab.remove_extra_whitespaces;
  bpe->escape_whitespaces_ = vocab.escape_whitespaces;
  return bpe;
}

int32_t SentencePieceBpe::PieceToId(absl::string_view piece) const {
  if (auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (auto it = pieces_.find(piece); it != pieces_.end()) return it->second;
  return unk_id_;
}

size_t SentencePieceBpe::UserDefinedPrefix(absl::string_view s) const {
  for (size_t len = std::min(s.size(), max_user_defined_length_); len > 0; --len) {
    auto it = pieces_.find(s.substr(0, len));
    if (it != pieces_.end() && types_[it->second] == PieceType::kUserDefined) return len;
  }
  return 0;
}

// SentencePiece's Normalizer::Normalize for an identity normalizer, chunk by chunk as it does (a chunk is one
// character, one U+FFFD for an invalid byte, or a user-defined piece taken verbatim).
std::string SentencePieceBpe::Normalize(absl::string_view input) const {
  std::string out;
  if (input.empty()) return out;
  auto next_chunk = [this](absl::string_view s, size_t* consumed) -> absl::string_view {
    if (max_user_defined_length_ > 0) {
      if (const size_t len = UserDefinedPrefix(s); len > 0) {
        *consumed = len;
        return s.substr(0, len);
      }
    }
    const int len = utf8::ValidCharLength(std::string_view(s.data(), s.size()));
    if (len == 0) {
      *consumed = 1;
      return kReplacementChar;
    }
    *consumed = static_cast<size_t>(len);
    return s.substr(0, *consumed);
  };
  size_t consumed = 0;
  if (remove_extra_whitespaces_) {
    while (!input.empty() && next_chunk(input, &consumed) == " ") input.remove_prefix(consumed);
    if (input.empty()) return out;
  }
  out.reserve(input.size() * 3 + kSpaceSymbol.size());
  const absl::string_view space = escape_whitespaces_ ? kSpaceSymbol : absl::string_view(" ");
  if (add_dummy_prefix_) out.append(space.data(), space.size());
  bool prev_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    absl::string_view chunk = next_chunk(input, &consumed);
    if (prev_space) {
      while (!chunk.empty() && chunk[0] == ' ') chunk.remove_prefix(1);
    }
    if (!chunk.empty()) {
      for (char c : chunk) {
        if (c == ' ') {
          out.append(space.data(), space.size());
        } else {
          out.push_back(c);
        }
      }
      prev_space = chunk.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!remove_extra_whitespaces_) prev_space = false;
  }
  if (remove_extra_whitespaces_) {
    absl::string_view kept(out);
    while (absl::ConsumeSuffix(&kept, space)) {
    }
    out.erase(kept.size());
  }
  return out;
}

std::vector<int32_t> SentencePieceBpe::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  const std::string normalized = Normalize(text);
  if (normalized.empty()) return ids;
  const absl::string_view rest_all(normalized);

  // One symbol per character (or user-defined piece).
  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  for (absl::string_view rest = rest_all; !rest.empty();) {
    size_t len = max_user_defined_length_ > 0 ? UserDefinedPrefix(rest) : 0;
    const bool frozen = len > 0;
    if (!frozen) len = OneCharLen(rest);
    const int index = static_cast<int>(symbols.size());
    rest.remove_prefix(len);
    symbols.push_back({index - 1, rest.empty() ? -1 : index + 1, frozen,
                       absl::string_view(rest.data() - len, len)});
  }

  // For unused pieces: what each was last merged from, to split it back at the end (SentencePiece's rev_merge).
  absl::flat_hash_map<absl::string_view, std::pair<absl::string_view, absl::string_view>> unmerge;
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(symbols.size());
  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> agenda(CandidateOrder(),
                                                                               std::move(heap_storage));
  auto add_candidate = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const absl::string_view merged(symbols[left].piece.data(),
                                   symbols[left].piece.size() + symbols[right].piece.size());
    const auto it = pieces_.find(merged);
    if (it == pieces_.end()) return;
    agenda.push({scores_[it->second], left, right, merged.size()});
    if (has_unused_ && types_[it->second] == PieceType::kUnused) {
      unmerge[merged] = {symbols[left].piece, symbols[right].piece};
    }
  };
  for (size_t i = 1; i < symbols.size(); ++i) add_candidate(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!agenda.empty()) {
    const Candidate top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.piece.empty() || right.piece.empty() || left.piece.size() + right.piece.size() != top.size) continue;
    left.piece = absl::string_view(left.piece.data(), top.size);
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.piece = absl::string_view();
    add_candidate(left.prev, top.left);
    add_candidate(top.left, left.next);
  }

  ids.reserve(symbols.size());
  // Without byte fallback a run of unknown symbols is one unknown id (SentencePiece merges them so that a decoder
  // can copy the unknown text).
  bool prev_unknown = false;
  auto emit = [&](absl::string_view piece, auto& self) -> void {
    const int32_t id = PieceToId(piece);
    if (has_unused_ && types_[id] == PieceType::kUnused) {
      if (auto it = unmerge.find(piece); it != unmerge.end()) {
        self(it->second.first, self);
        self(it->second.second, self);
        return;
      }
    }
    const bool unknown = types_[id] == PieceType::kUnknown;
    if (unknown && byte_fallback_) {
      for (char b : piece) ids.push_back(byte_ids_[static_cast<uint8_t>(b)]);
    } else if (!(unknown && prev_unknown)) {
      ids.push_back(id);
    }
    prev_unknown = unknown;
  };
  for (int i = 0; i >= 0; i = symbols[i].next) emit(symbols[i].piece, emit);
  return ids;
}

}  // namespace llama
