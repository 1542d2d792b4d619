#include "engine/text/model_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/model/gguf.h"
#include "engine/model/model_source.h"
#include "engine/text/gguf_vocab.h"
#include "engine/text/sentencepiece_vocab.h"

namespace llama {
namespace {

// The tokenizer.model beside a GGUF file, after checking it holds the GGUF's own pieces.
absl::StatusOr<std::unique_ptr<Tokenizer>> SiblingTokenizer(const std::string& path, const SentencePieceVocab& gguf,
                                                            const std::string& gguf_path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read tokenizer '", path, "'"));
  std::stringstream bytes;
  bytes << in.rdbuf();
  ASSIGN_OR_RETURN(SentencePieceVocab sibling, ParseModelProto(bytes.str()));
  if (sibling.pieces.size() != gguf.pieces.size()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has ", sibling.pieces.size(), " pieces, the vocab of ",
                                                   gguf_path, " ", gguf.pieces.size(), ": not this model's tokenizer"));
  }
  for (size_t i = 0; i < gguf.pieces.size(); ++i) {
    if (sibling.pieces[i].piece != gguf.pieces[i].piece) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": piece ", i, " is '", sibling.pieces[i].piece, "', ",
                                                     gguf_path, " has '", gguf.pieces[i].piece,
                                                     "': not this model's tokenizer"));
    }
  }
  return Tokenizer::FromSerializedModel(bytes.str(), path);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModel(const std::string& model_path) {
  if (!IsModelFile(model_path)) return Tokenizer::Load(model_path + "/tokenizer.model");
  ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(model_path));
  ASSIGN_OR_RETURN(SentencePieceVocab vocab, GgufSentencePieceVocab(file));
  const std::string sibling = (std::filesystem::path(model_path).parent_path() / "tokenizer.model").string();
  if (std::error_code ec; std::filesystem::is_regular_file(sibling, ec)) return SiblingTokenizer(sibling, vocab, model_path);
  return Tokenizer::FromSerializedModel(SerializeModelProto(vocab), absl::StrCat(model_path, " (GGUF vocab)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const std::string& model_path) {
  // The vocab's memory is bounded by the file's size, but a huge one may still not fit: say so.
  try {
    return LoadModel(model_path);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(model_path, ": out of memory reading the tokenizer"));
  }
}

}  // namespace llama
