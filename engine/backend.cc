#include "engine/backend.h"

#include "absl/strings/str_cat.h"

namespace llama {
namespace {

absl::Status Invalid(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("ForwardInput.", field, ": ", what));
}

absl::Status ValidateShapes(const ForwardInput& in) {
  const int num_tokens = in.num_tokens();
  const int num_seqs = in.num_seqs();
  if (static_cast<int>(in.positions.size()) != num_tokens) {
    return Invalid("positions", absl::StrCat("has ", in.positions.size(), " entries for ", num_tokens, " tokens"));
  }
  if (static_cast<int>(in.slot_mapping.size()) != num_tokens) {
    return Invalid("slot_mapping",
                   absl::StrCat("has ", in.slot_mapping.size(), " entries for ", num_tokens, " tokens"));
  }
  if (num_tokens > 0 && in.query_start.empty()) return Invalid("query_start", "empty but the batch has tokens");
  if (!in.query_start.empty()) {
    if (in.query_start.front() != 0) return Invalid("query_start", "must start at 0");
    for (int s = 0; s < num_seqs; ++s) {
      if (in.query_start[s + 1] < in.query_start[s]) return Invalid("query_start", "must be non-decreasing");
    }
    if (in.query_start.back() != num_tokens) {
      return Invalid("query_start", absl::StrCat("ends at ", in.query_start.back(), ", not at ", num_tokens));
    }
  }
  if (static_cast<int>(in.context_lens.size()) != num_seqs) {
    return Invalid("context_lens", absl::StrCat("has ", in.context_lens.size(), " entries for ", num_seqs, " seqs"));
  }
  if (in.max_blocks_per_seq < 0) return Invalid("max_blocks_per_seq", "must be >= 0");
  if (static_cast<int64_t>(in.block_tables.size()) != int64_t{num_seqs} * in.max_blocks_per_seq) {
    return Invalid("block_tables", absl::StrCat("has ", in.block_tables.size(), " entries, expected num_seqs (",
                                                num_seqs, ") * max_blocks_per_seq (", in.max_blocks_per_seq, ")"));
  }
  return absl::OkStatus();
}

// One sequence: context length, its block-table row, its tokens' positions and slots.
absl::Status ValidateSequence(const ForwardInput& in, int s, const ModelConfig& config, const KvCacheSpec& kv) {
  const int begin = in.query_start[s];
  const int n = in.query_start[s + 1] - begin;
  const int ctx = in.context_lens[s];
  if (ctx < n || ctx > config.max_position_embeddings) {
    return Invalid("context_lens", absl::StrCat("seq ", s, " has ", ctx, " tokens; needs >= its ", n,
                                                " new tokens and <= max context ", config.max_position_embeddings));
  }
  const int blocks_needed = (ctx + kv.block_size - 1) / kv.block_size;
  if (blocks_needed > in.max_blocks_per_seq) {
    return Invalid("block_tables", absl::StrCat("seq ", s, " needs ", blocks_needed, " blocks, row holds ",
                                                in.max_blocks_per_seq));
  }
  const int32_t* row = in.block_tables.data() + static_cast<int64_t>(s) * in.max_blocks_per_seq;
  for (int b = 0; b < in.max_blocks_per_seq; ++b) {
    const bool used = b < blocks_needed;
    if ((used && row[b] < 0) || row[b] < -1 || row[b] >= kv.num_blocks) {
      return Invalid("block_tables",
                     absl::StrCat("seq ", s, " entry ", b, " = ", row[b], " out of range [0, ", kv.num_blocks, ")"));
    }
  }
  for (int i = begin; i < begin + n; ++i) {
    // The new tokens are the last n of the context, in order: attention reads the cache by position.
    const int expected_pos = ctx - n + (i - begin);
    if (in.positions[i] != expected_pos) {
      return Invalid("positions", absl::StrCat("token ", i, " of seq ", s, " has position ", in.positions[i],
                                               ", expected ", expected_pos, " from context_lens"));
    }
    const int64_t slot = KvSlot(absl::MakeConstSpan(row, in.max_blocks_per_seq), expected_pos, kv.block_size);
    if (in.slot_mapping[i] != slot) {
      return Invalid("slot_mapping", absl::StrCat("token ", i, " of seq ", s, " maps to slot ", in.slot_mapping[i],
                                                  ", but its block table puts position ", expected_pos,
                                                  " at slot ", slot));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ForwardInput::Validate(const ModelConfig& config, const KvCacheSpec& kv) const {
  if (absl::Status st = ValidateShapes(*this); !st.ok()) return st;
  for (int i = 0; i < num_tokens(); ++i) {
    if (token_ids[i] < 0 || token_ids[i] >= config.vocab_size) {
      return Invalid("token_ids", absl::StrCat("token ", i, " = ", token_ids[i], " out of range [0, ",
                                               config.vocab_size, ")"));
    }
    if (positions[i] < 0 || positions[i] >= config.max_position_embeddings) {
      return Invalid("positions", absl::StrCat("token ", i, " = ", positions[i], " out of range [0, ",
                                               config.max_position_embeddings, ")"));
    }
  }
  for (int s = 0; s < num_seqs(); ++s) {
    if (absl::Status st = ValidateSequence(*this, s, config, kv); !st.ok()) return st;
  }
  for (const auto& [src, dst] : block_copies) {
    if (src < 0 || src >= kv.num_blocks || dst < 0 || dst >= kv.num_blocks) {
      return Invalid("block_copies", absl::StrCat("(", src, ", ", dst, ") out of range [0, ", kv.num_blocks, ")"));
    }
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    if (outputs[o].token_index < 0 || outputs[o].token_index >= num_tokens()) {
      return Invalid("outputs", absl::StrCat("row ", o, " token_index ", outputs[o].token_index,
                                             " out of range [0, ", num_tokens(), ")"));
    }
    if (outputs[o].sample) {
      if (absl::Status st = outputs[o].params.Validate(); !st.ok()) {
        return Invalid("outputs", absl::StrCat("row ", o, " sampling params: ", st.message()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace llama
