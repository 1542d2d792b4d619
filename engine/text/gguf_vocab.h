// The llama tokenizer a GGUF file carries (ggml's docs/gguf.md, "Tokenizer"), as a SentencePiece vocab that
// SerializeModelProto turns into a SentencePiece model: tokenizer.ggml.model "llama" (SentencePiece);
// tokenizer.ggml.tokens (strings, required), .scores (float32, default 0), .token_type (int32 1..6, SentencePiece's
// piece types, default normal), each as long as the tokens; .bos_token_id / .eos_token_id / .unknown_token_id
// (1, 2, 0) and .padding_token_id (none), all inside the vocab; .add_space_prefix (true) and
// .remove_extra_whitespaces (false). Byte fallback is on when the vocab has byte pieces. Errors are
// INVALID_ARGUMENT naming the key (and the index of a bad element).
#pragma once

#include "absl/status/statusor.h"
#include "engine/model/gguf.h"
#include "engine/text/sentencepiece_vocab.h"

namespace llama {

absl::StatusOr<SentencePieceVocab> GgufSentencePieceVocab(const GgufFile& file);

}  // namespace llama
