// StepBudget: "fits in this step". A step computes at most max_num_batched_tokens tokens over at most
// max_num_seqs sequences; this hands that budget out. (Whether a sequence fits in KV memory is the block
// allocator's question, asked separately.)
#pragma once

#include <algorithm>

namespace llama {

class StepBudget {
 public:
  StepBudget(int max_tokens, int max_seqs) : tokens_left_(max_tokens), seqs_left_(max_seqs) {}

  // How many of a sequence's `wanted` new tokens this step can take: all of them, a chunk (a long prompt is split
  // over several steps), or 0 when the token budget or the sequence cap is spent.
  int TokensFor(int wanted) const { return seqs_left_ > 0 ? std::min(wanted, tokens_left_) : 0; }
  // Schedules one sequence with num_tokens tokens.
  void Take(int num_tokens) {
    tokens_left_ -= num_tokens;
    --seqs_left_;
  }
  int tokens_left() const { return tokens_left_; }
  int seqs_left() const { return seqs_left_; }

 private:
  int tokens_left_;
  int seqs_left_;
};

}  // namespace llama
