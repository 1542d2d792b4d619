// TextStream: one candidate's generated tokens → the (token ids, text) that may go to the client, applying stop
// strings. Text comes from the IncrementalDetokenizer (whole UTF-8). A stop string and everything after it is
// never emitted; text that could still be the start of a stop string is held back until it is decided. A token
// is emitted together with the last byte of its text (tokens whose text is cut by a stop string are dropped).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "engine/text/tokenizer.h"

namespace llama {

class TextStream {
 public:
  struct Delta {
    // Inline: a delta is almost always one token, and the engine thread must not allocate per token.
    absl::InlinedVector<int32_t, 4> token_ids;
    std::string text;
    bool stopped = false;  // a stop string matched; nothing more may be emitted
    bool empty() const { return token_ids.empty() && text.empty(); }
  };

  // tokenizer may be null (ids only, no text; then stop must be empty). Both must outlive the stream.
  TextStream(const Tokenizer* tokenizer, const std::vector<std::string>* stop);

  // A generated token (not EOS).
  Delta Push(int32_t token);
  // The end of the stream (EOS, a length limit): whatever is held back is decided now.
  Delta Flush();

 private:
  // Emits held text and ids up to text offset `end`, keeping the rest held.
  Delta Release(size_t end);
  // Offset in held_ where the first stop string starts, or npos.
  size_t FindStop() const;
  // Bytes at the end of held_ that are a proper prefix of some stop string.
  size_t PossibleStopSuffix() const;

  const Tokenizer* tokenizer_;
  const std::vector<std::string>* stop_;
  IncrementalDetokenizer detokenizer_;
  std::string held_;                                   // decoded, not yet emitted
  std::vector<std::pair<int32_t, size_t>> held_ids_;  // (token, offset in held_ where its text ends)
  bool stopped_ = false;
};

}  // namespace llama
