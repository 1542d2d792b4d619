// The fixed vocabulary synthetic prompts are written in: common English words (function words, everyday nouns,
// verbs and adjectives), so a prompt's tokens per word is close to that of real English text under a LLaMA-style
// tokenizer (about 1.3), rather than the 1 token per word of a repeated filler or the 3+ of random letters.
#pragma once



#include "absl/types/span.h"

namespace llama::load {

absl::Span<const char* const> Words();
// Very common words that are (in LLaMA's vocabulary) one token each; used to top a prompt up to an exact length.
absl::Span<const char* const> FillerWords();

}  // namespace llama::load
