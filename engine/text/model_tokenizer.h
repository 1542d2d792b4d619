// The tokenizer of the model a --model path names (engine/model/model_source.h): DIR/tokenizer.model for a model
// directory; for a GGUF file the tokenizer.model beside it when there is one (its pieces must be the GGUF's tokens,
// else INVALID_ARGUMENT: a stray file of another model is never used silently), otherwise the SentencePiece model
// assembled from the GGUF's own vocab (gguf_vocab.h).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/text/tokenizer.h"

namespace llama {

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadModelTokenizer(const std::string& model_path);

}  // namespace llama
