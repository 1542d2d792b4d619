#include "engine/text/tokenizer.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/check.h"
#include "base/status_macros.h"
#include "base/utf8.h"
#include "engine/text/sentencepiece_bpe.h"
#include "engine/text/sentencepiece_vocab.h"

namespace llama {
namespace {

constexpr char kSpaceSymbol[] = "\xE2\x96\x81";  // "▁", SentencePiece's visible space

// "<0xNN>" → the byte NN.
absl::StatusOr<std::string> BytePieceToByte(const std::string& piece) {
  int value = 0;
  if (piece.size() != 6 || piece.rfind("<0x", 0) != 0 || piece.back() != '>' ||
      !absl::SimpleHexAtoi(piece.substr(3, 2), &value)) {
    return absl::InvalidArgumentError(absl::StrCat("malformed byte piece '", piece, "'"));
  }
  return std::string(1, static_cast<char>(value));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& model_path) {
  if (std::error_code ec; !std::filesystem::is_regular_file(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat("tokenizer '", model_path, "': no such file"));
  }
  std::ifstream in(model_path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read tokenizer '", model_path, "'"));
  std::stringstream bytes;
  bytes << in.rdbuf();
  return FromSerializedModel(bytes.str(), model_path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromSerializedModel(const std::string& serialized_model,
                                                                          const std::string& name) {
  absl::StatusOr<SentencePieceVocab> vocab = ParseModelProto(serialized_model);
  if (!vocab.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot load tokenizer '", name, "': ", vocab.status().message()));
  }
  return FromVocab(*vocab, name);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(const SentencePieceVocab& vocab,
                                                                const std::string& name) {
  absl::StatusOr<std::unique_ptr<SentencePieceBpe>> encoder = SentencePieceBpe::Create(vocab);
  if (!encoder.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load tokenizer '", name, "': ", encoder.status().message()));
  }
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer());
  const int vocab_size = static_cast<int>(vocab.pieces.size());
  tokenizer->piece_bytes_.resize(vocab_size);
  tokenizer->piece_kinds_.resize(vocab_size);
  for (int id = 0; id < vocab_size; ++id) {
    std::string& bytes = tokenizer->piece_bytes_[id];
    PieceKind& kind = tokenizer->piece_kinds_[id];
    const VocabPiece& piece = vocab.pieces[id];
    switch (piece.type) {
      case PieceType::kControl: kind = PieceKind::kControl; break;
      case PieceType::kUnknown:
        kind = PieceKind::kUnknown;
        // SentencePiece prints the model's unknown surface, never the piece text.
        bytes = vocab.unk_surface;
        break;
      case PieceType::kByte: {
        kind = PieceKind::kByte;
        ASSIGN_OR_RETURN(bytes, BytePieceToByte(piece.piece));
        break;
      }
      default:  // normal, user-defined and unused pieces print their text
        kind = PieceKind::kNormal;
        bytes = absl::StrReplaceAll(piece.piece, {{kSpaceSymbol, " "}});
    }
  }
  // SentencePiece's bos_id()/eos_id() are control pieces; a model without them cannot frame a prompt.
  for (const auto& [what, id] : {std::pair<const char*, int32_t>{"BOS", vocab.bos_id}, {"EOS", vocab.eos_id}}) {
    if (id < 0 || id >= vocab_size || vocab.pieces[id].type != PieceType::kControl) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer '", name, "' has no ", what, " piece"));
    }
  }
  tokenizer->bos_id_ = vocab.bos_id;
  tokenizer->eos_id_ = vocab.eos_id;
  tokenizer->strips_leading_space_ = vocab.add_dummy_prefix || vocab.remove_extra_whitespaces;
  tokenizer->first_piece_must_print_ = vocab.remove_extra_whitespaces;
  tokenizer->encoder_ = std::move(*encoder);
  return tokenizer;
}

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::Encode(std::string_view text) const {
  return encoder_->Encode(absl::string_view(text.data(), text.size()));
}

std::string Tokenizer::Decode(absl::Span<const int32_t> ids) const {
  IncrementalDetokenizer detokenizer(this);
  std::string text;
  for (int32_t id : ids) text += detokenizer.Push(id);  // Push CHECKs the range: ids come from our own model
  text += detokenizer.Flush();
  return text;
}

const std::string& Tokenizer::PieceBytes(int32_t id) const {
  CHECK(id >= 0 && id < vocab_size());
  return piece_bytes_[id];
}

Tokenizer::PieceKind Tokenizer::piece_kind(int32_t id) const {
  CHECK(id >= 0 && id < vocab_size());
  return piece_kinds_[id];
}

namespace {

// Takes the complete characters off the front of `pending` (a run of byte pieces): each byte that can no longer
// start a valid character becomes one U+FFFD (SentencePiece's policy); an unfinished character at the end stays
// held back.
std::string TakeCompleteChars(std::string* pending) {
  const size_t complete = pending->size() - utf8::IncompleteSuffixLength(*pending);
  std::string out = utf8::ReplaceEachInvalidByte(std::string_view(*pending).substr(0, complete));
  pending->erase(0, complete);
  return out;
}

// The run ended: the held-back bytes (a lead byte plus continuation bytes) can no longer complete, and
// SentencePiece prints each of them as one U+FFFD.
std::string ReplaceHeldBack(std::string* pending) {
  std::string out = utf8::ReplaceEachInvalidByte(*pending);
  pending->clear();
  return out;
}

}  // namespace

// Mirrors SentencePiece's decoder: consecutive byte pieces form one run decoded as UTF-8; any other piece (control
// pieces included) ends the run; the first piece that is not a control piece loses one leading "▁" if it is a
// normal piece (after BOS too, since BOS is a control piece).
std::string IncrementalDetokenizer::Push(int32_t id) {
  using Kind = Tokenizer::PieceKind;
  const Kind kind = tokenizer_->piece_kind(id);
  const std::string& bytes = tokenizer_->PieceBytes(id);
  std::string out;
  bool printed = true;  // byte pieces always print something: a character or U+FFFD
  if (kind == Kind::kByte) {
    pending_ += bytes;
    out = TakeCompleteChars(&pending_);
  } else {
    out = ReplaceHeldBack(&pending_);
    std::string_view piece_text = bytes;
    if (first_piece_ && kind == Kind::kNormal && tokenizer_->strips_leading_space() && !piece_text.empty() &&
        piece_text[0] == ' ') {
      piece_text.remove_prefix(1);
    }
    printed = !piece_text.empty();
    out += piece_text;
  }
  if (kind != Kind::kControl && (printed || !tokenizer_->first_piece_must_print())) first_piece_ = false;
  text_ += out;
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out = ReplaceHeldBack(&pending_);
  text_ += out;
  return out;
}

}  // namespace llama
