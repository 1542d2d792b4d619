#include "engine/text/gguf_vocab.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace llama {
namespace {

absl::Status VocabError(const GgufFile& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": gguf: ", what));
}

// An optional numeric array the same length as the tokens; nullptr when absent.
absl::StatusOr<const GgufValue*> ParallelArray(const GgufFile& file, const std::string& key, GgufValueType element,
                                               size_t num_tokens) {
  absl::StatusOr<const GgufValue*> array = file.GetArray(key, element);
  if (absl::IsNotFound(array.status())) return nullptr;
  if (!array.ok()) return array.status();
  if ((*array)->array_size != num_tokens) {
    return VocabError(file, absl::StrCat(key, " has ", (*array)->array_size, " elements, tokenizer.ggml.tokens has ",
                                         num_tokens));
  }
  return *array;
}

// A special token id: `fallback` when absent; must name a token.
absl::StatusOr<int32_t> TokenId(const GgufFile& file, const std::string& key, int32_t fallback, size_t num_tokens) {
  absl::StatusOr<uint64_t> id = file.GetUint(key, std::numeric_limits<int32_t>::max());
  if (absl::IsNotFound(id.status())) return fallback;
  if (!id.ok()) return id.status();
  if (*id >= num_tokens) return VocabError(file, absl::StrCat(key, " = ", *id, " is outside the ", num_tokens, " tokens"));
  return static_cast<int32_t>(*id);
}

absl::StatusOr<bool> Flag(const GgufFile& file, const std::string& key, bool fallback) {
  absl::StatusOr<bool> v = file.GetBool(key);
  if (absl::IsNotFound(v.status())) return fallback;
  return v;
}

}  // namespace

absl::StatusOr<SentencePieceVocab> GgufSentencePieceVocab(const GgufFile& file) {
  absl::StatusOr<std::string_view> model = file.GetString("tokenizer.ggml.model");
  if (absl::IsNotFound(model.status())) return VocabError(file, "missing metadata key 'tokenizer.ggml.model'");
  if (!model.ok()) return model.status();
  if (*model != "llama") {
    return VocabError(file, absl::StrCat("tokenizer.ggml.model is '", std::string(*model),
                                         "'; only 'llama' (SentencePiece) is supported"));
  }
  absl::StatusOr<const GgufValue*> tokens_value = file.GetArray("tokenizer.ggml.tokens", GgufValueType::kString);
  if (absl::IsNotFound(tokens_value.status())) return VocabError(file, "missing metadata key 'tokenizer.ggml.tokens'");
  if (!tokens_value.ok()) return tokens_value.status();
  const std::vector<std::string_view> tokens = GgufArrayStrings(**tokens_value);
  ASSIGN_OR_RETURN(const GgufValue* scores,
                   ParallelArray(file, "tokenizer.ggml.scores", GgufValueType::kFloat32, tokens.size()));
  ASSIGN_OR_RETURN(const GgufValue* types,
                   ParallelArray(file, "tokenizer.ggml.token_type", GgufValueType::kInt32, tokens.size()));
  SentencePieceVocab vocab;
  vocab.byte_fallback = false;
  vocab.pieces.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    VocabPiece& p = vocab.pieces[i];
    p.piece = std::string(tokens[i]);
    if (scores != nullptr) p.score = static_cast<float>(GgufArrayNumber(*scores, i));
    if (types != nullptr) {
      const int64_t t = static_cast<int64_t>(GgufArrayNumber(*types, i));
      if (t < static_cast<int64_t>(PieceType::kNormal) || t > static_cast<int64_t>(PieceType::kByte)) {
        return VocabError(file, absl::StrCat("tokenizer.ggml.token_type[", i, "] = ", t, " is not a token type (1-6)"));
      }
      p.type = static_cast<PieceType>(t);
    }
    if (p.type == PieceType::kByte) vocab.byte_fallback = true;
  }
  ASSIGN_OR_RETURN(vocab.bos_id, TokenId(file, "tokenizer.ggml.bos_token_id", 1, tokens.size()));
  ASSIGN_OR_RETURN(vocab.eos_id, TokenId(file, "tokenizer.ggml.eos_token_id", 2, tokens.size()));
  ASSIGN_OR_RETURN(vocab.unk_id, TokenId(file, "tokenizer.ggml.unknown_token_id", 0, tokens.size()));
  ASSIGN_OR_RETURN(vocab.pad_id, TokenId(file, "tokenizer.ggml.padding_token_id", -1, tokens.size()));
  ASSIGN_OR_RETURN(vocab.add_dummy_prefix, Flag(file, "tokenizer.ggml.add_space_prefix", true));
  ASSIGN_OR_RETURN(vocab.remove_extra_whitespaces, Flag(file, "tokenizer.ggml.remove_extra_whitespaces", false));
  return vocab;
}

}  // namespace llama
