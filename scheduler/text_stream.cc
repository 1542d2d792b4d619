#include "scheduler/text_stream.h"

#include <algorithm>

#include "base/check.h"

namespace llama {

TextStream::TextStream(const Tokenizer* tokenizer, const std::vector<std::string>* stop)
    : tokenizer_(tokenizer), stop_(stop), detokenizer_(tokenizer) {
  CHECK(stop_ != nullptr);
  CHECK(tokenizer_ != nullptr || stop_->empty());
}

size_t TextStream::FindStop() const {
  size_t first = std::string::npos;
  for (const std::string& s : *stop_) first = std::min(first, held_.find(s));
  return first;
}

size_t TextStream::PossibleStopSuffix() const {
  size_t longest = 0;
  for (const std::string& s : *stop_) {
    for (size_t len = std::min(s.size() - 1, held_.size()); len > longest; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        longest = len;
        break;
      }
    }
  }
  return longest;
}

TextStream::Delta TextStream::Release(size_t end) {
  Delta delta;
  delta.text = held_.substr(0, end);
  held_.erase(0, end);
  size_t n = 0;
  while (n < held_ids_.size() && held_ids_[n].second <= end) delta.token_ids.push_back(held_ids_[n++].first);
  held_ids_.erase(held_ids_.begin(), held_ids_.begin() + n);
  for (auto& [id, offset] : held_ids_) offset -= end;
  return delta;
}

TextStream::Delta TextStream::Push(int32_t token) {
  CHECK(!stopped_);
  if (tokenizer_ != nullptr) held_ += detokenizer_.Push(token);
  held_ids_.emplace_back(token, held_.size());
  if (const size_t stop_at = FindStop(); stop_at != std::string::npos) {
    Delta delta = Release(stop_at);
    held_.clear();
    held_ids_.clear();
    stopped_ = delta.stopped = true;
    return delta;
  }
  return Release(held_.size() - PossibleStopSuffix());
}

TextStream::Delta TextStream::Flush() {
  if (stopped_) return {};
  if (tokenizer_ != nullptr) held_ += detokenizer_.Flush();
  if (const size_t stop_at = FindStop(); stop_at != std::string::npos) {
    Delta delta = Release(stop_at);
    held_.clear();
    held_ids_.clear();
    stopped_ = delta.stopped = true;
    return delta;
  }
  return Release(held_.size());
}

}  // namespace llama
