#include "scheduler/block_hash.h"

#include "base/check.h"

namespace llama {
namespace {

// One 64-bit word into the running key: add, then the SplitMix64 finalizer (a bijection with full avalanche), so
// keys spread evenly over the index whatever the token ids look like.
BlockHash Mix(BlockHash h, uint64_t word) {
  h += word + 0x9E3779B97F4A7C15ull;
  h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
  h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
  return h ^ (h >> 31);
}

BlockHash MixText(BlockHash h, std::string_view text) {
  h = Mix(h, text.size());
  for (unsigned char c : text) h = Mix(h, c);
  return h;
}

}  // namespace

BlockHash PrefixCacheRoot(std::string_view model_source, std::string_view backend, const ModelConfig& config,
                          const KvCacheSpec& kv) {
  BlockHash h = MixText(0, "llama-chat prefix cache v1");
  h = MixText(h, model_source);
  h = MixText(h, backend);
  h = MixText(h, ModelConfigToJson(config));  // every field of the model's shape, RoPE and vocabulary
  h = Mix(h, static_cast<uint64_t>(kv.dtype_bytes));
  h = Mix(h, static_cast<uint64_t>(kv.block_size));
  return h;
}

BlockHash HashBlockTokens(BlockHash parent, absl::Span<const int32_t> tokens) {
  BlockHash h = Mix(parent, tokens.size());
  for (int32_t t : tokens) h = Mix(h, static_cast<uint32_t>(t));
  return h;
}

void ExtendBlockHashes(BlockHash root, absl::Span<const int32_t> tokens, int block_size,
                       std::vector<BlockHash>* hashes) {
  CHECK_GT(block_size, 0);
  const size_t num_full = tokens.size() / block_size;
  CHECK_LE(hashes->size(), num_full);
  for (size_t i = hashes->size(); i < num_full; ++i) {
    const BlockHash parent = i == 0 ? root : (*hashes)[i - 1];
    hashes->push_back(HashBlockTokens(parent, tokens.subspan(i * block_size, block_size)));
  }
}

}  // namespace llama
