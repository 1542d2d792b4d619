// CpuBackend against the numpy golden scenarios (tests/golden/make_forward_golden.py), plus batching invariance,
// block copies, thread-count invariance and input validation.
#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/forward_batch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

using ::testing::HasSubstr;

std::string GoldenDir(const std::string& name) { return std::string(LLAMA_SOURCE_DIR) + "/tests/golden/" + name; }

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::unique_ptr<CpuBackend> MakeBackend(const std::string& dir, int num_blocks, int block_size, int threads) {
  auto weights = LoadModelWeights(dir);
  EXPECT_TRUE(weights.ok()) << weights.status();
  CpuBackendOptions options;
  options.num_threads = threads;
  options.block_size = block_size;
  options.num_blocks = num_blocks;
  auto backend = CpuBackend::Create(std::move(*weights), options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return std::move(*backend);
}

// One step of a scenario as a ForwardInput; expected[o] are the golden logits of output row o.
struct GoldenStep {
  ForwardInput input;
  std::vector<std::vector<float>> expected;
};

std::vector<GoldenStep> LoadScenario(const nlohmann::json& sc) {
  std::vector<GoldenStep> steps;
  for (const auto& step : sc["steps"]) {
    GoldenStep g;
    ForwardBatchBuilder batch(sc["block_size"].get<int>());
    for (const auto& seq : step) {
      const std::vector<int32_t> table = sc["block_tables"][seq["seq"].get<std::string>()];
      batch.AddSequence(seq["tokens"].get<std::vector<int32_t>>(), seq["start"].get<int>(), table);
      for (const auto& row : seq["output_rows"]) {
        OutputRow out;
        out.params.temperature = 0.0f;  // greedy: the sampled id must be the argmax of the expected logits
        batch.AddOutputAt(row.get<int>(), out);
      }
      for (const auto& logits : seq["expected_logits"]) g.expected.push_back(logits.get<std::vector<float>>());
    }
    g.input = std::move(batch).Build();
    g.input.return_logits = true;
    steps.push_back(std::move(g));
  }
  return steps;
}

// Tolerance: the reference runs in float64; the engine in fp32 with dot products of <= 160 terms over 2 layers,
// whose rounding error is ~1e-6 relative to the values' scale. 1e-4 of the row's logit scale leaves two orders of
// magnitude of margin, while any real defect (a wrong position, block, head mapping or mask) moves logits by O(0.1).
void ExpectGolden(const std::string& name, int threads) {
  const std::string dir = GoldenDir(name);
  const nlohmann::json sc = ReadJson(dir + "/scenario.json");
  auto backend = MakeBackend(dir, sc["num_blocks"], sc["block_size"], threads);
  ASSERT_NE(backend, nullptr);
  const int vocab = backend->config().vocab_size;
  int step_index = 0;
  for (const GoldenStep& step : LoadScenario(sc)) {
    ForwardOutput out;
    ASSERT_TRUE(backend->Forward(step.input, &out).ok());
    ASSERT_EQ(out.logits.size(), step.expected.size() * vocab);
    for (size_t o = 0; o < step.expected.size(); ++o) {
      float scale = 1.0f, max_err = 0.0f;
      int argmax = 0;
      for (int j = 0; j < vocab; ++j) {
        const float e = step.expected[o][j];
        scale = std::max(scale, std::fabs(e));
        max_err = std::max(max_err, std::fabs(out.logits[o * vocab + j] - e));
        if (e > step.expected[o][argmax]) argmax = j;
      }
      EXPECT_LE(max_err, 1e-4f * scale) << name << " step " << step_index << " row " << o;
      EXPECT_EQ(out.sampled_tokens[o], argmax) << name << " step " << step_index << " row " << o;
    }
    ++step_index;
  }
}

TEST(CpuBackendGoldenTest, GqaMixedPrefillAndDecodeMatchesNumpy) { ExpectGolden("forward_gqa", 2); }
TEST(CpuBackendGoldenTest, GqaSingleThreadMatchesNumpy) { ExpectGolden("forward_gqa", 1); }
TEST(CpuBackendGoldenTest, LinearRopeScalingTiedEmbeddingsMatchesNumpy) { ExpectGolden("forward_gqa_rope2", 2); }

// A sequence's logits do not depend on what else shares the batch, nor on the thread count: every output element
// is computed by the same sequence of fp32 operations, so equality is exact.
TEST(CpuBackendTest, BatchCompositionAndThreadsDoNotChangeLogits) {
  const std::string dir = GoldenDir("forward_gqa");
  const nlohmann::json sc = ReadJson(dir + "/scenario.json");
  std::vector<GoldenStep> steps = LoadScenario(sc);
  auto together = MakeBackend(dir, sc["num_blocks"], sc["block_size"], 2);
  auto alone = MakeBackend(dir, sc["num_blocks"], sc["block_size"], 3);
  // Run the whole scenario batched, and each step's sequences one at a time on the other backend.
  for (const GoldenStep& step : steps) {
    ForwardOutput batched;
    ASSERT_TRUE(together->Forward(step.input, &batched).ok());
    const ForwardInput& in = step.input;
    std::vector<float> separate;
    for (int s = 0; s < in.num_seqs(); ++s) {
      // Sequence s alone: its tokens, start position, blocks (the row without its -1 padding) and output rows.
      const int b = in.query_start[s], e = in.query_start[s + 1];
      const auto row = absl::MakeConstSpan(in.block_tables).subspan(s * in.max_blocks_per_seq, in.max_blocks_per_seq);
      const int num_blocks = static_cast<int>(std::count_if(row.begin(), row.end(), [](int32_t id) { return id >= 0; }));
      ForwardBatchBuilder batch(sc["block_size"].get<int>());
      batch.AddSequence(absl::MakeConstSpan(in.token_ids).subspan(b, e - b), in.positions[b], row.first(num_blocks));
      for (const OutputRow& out_row : in.outputs) {
        if (out_row.token_index >= b && out_row.token_index < e) batch.AddOutputAt(out_row.token_index - b, out_row);
      }
      ForwardInput one = std::move(batch).Build();
      one.return_logits = true;
      ForwardOutput out;
      ASSERT_TRUE(alone->Forward(one, &out).ok());
      separate.insert(separate.end(), out.logits.begin(), out.logits.end());
    }
    EXPECT_EQ(batched.logits, separate);
  }
}

// Forking a sequence by copying its last (partial) block gives the fork the same continuation.
TEST(CpuBackendTest, BlockCopyForksASequence) {
  const std::string dir = GoldenDir("forward_gqa");
  auto backend = MakeBackend(dir, 8, 4, 2);
  ForwardBatchBuilder prefill(4);
  prefill.AddSequence({5, 17, 42, 3, 9, 60}, 0, {2, 5});  // 6 tokens: block 2 full, block 5 half full
  ForwardOutput out;
  ASSERT_TRUE(backend->Forward(std::move(prefill).Build(), &out).ok());
  // Decode token 7 at position 6 in the original (blocks 2, 5) and in a fork (blocks 2, 7 with 5 copied to 7).
  ForwardBatchBuilder batch(4);
  batch.AddBlockCopy(5, 7);
  batch.AddSequence({7}, 6, {2, 5});
  batch.AddOutput({});
  batch.AddSequence({7}, 6, {2, 7});
  batch.AddOutput({});
  ForwardInput decode = std::move(batch).Build();
  decode.return_logits = true;
  EXPECT_EQ(decode.slot_mapping, (std::vector<int32_t>{22, 30}));
  ASSERT_TRUE(backend->Forward(decode, &out).ok());
  const int vocab = backend->config().vocab_size;
  ASSERT_EQ(out.logits.size(), 2u * vocab);
  EXPECT_EQ(std::vector<float>(out.logits.begin(), out.logits.begin() + vocab),
            std::vector<float>(out.logits.begin() + vocab, out.logits.end()));
}

TEST(CpuBackendTest, ReturnHiddenGivesFinalNormRowsThatProduceTheLogits) {
  const std::string dir = GoldenDir("forward_gqa");
  auto backend = MakeBackend(dir, 4, 8, 2);
  auto weights = LoadModelWeights(dir);
  ASSERT_TRUE(weights.ok());
  ForwardBatchBuilder batch(8);
  batch.AddSequence({3, 4, 5}, 0, {3});
  OutputRow row;
  row.sample = false;
  batch.AddOutput(row);
  ForwardInput in = std::move(batch).Build();
  in.return_logits = true;
  in.return_hidden = true;
  ForwardOutput out;
  ASSERT_TRUE(backend->Forward(in, &out).ok());
  const int dim = weights->config.hidden_size, vocab = weights->config.vocab_size;
  ASSERT_EQ(out.hidden.size(), static_cast<size_t>(dim));
  EXPECT_EQ(out.sampled_tokens, std::vector<int32_t>{-1});
  for (int j = 0; j < vocab; ++j) {
    double dot = 0.0;
    for (int k = 0; k < dim; ++k) dot += double{out.hidden[k]} * weights->lm_head[j * dim + k];
    EXPECT_NEAR(out.logits[j], dot, 1e-4);
  }
}

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.vocab_size = 100;
    config_.max_position_embeddings = 64;
    kv_.block_size = 4;
    kv_.num_blocks = 8;
    // Two sequences: one prefilling 3 tokens into block 6, one decoding its 6th token (blocks 1, 4).
    ForwardBatchBuilder batch(kv_.block_size);
    batch.AddSequence({1, 2, 3}, 0, {6});
    batch.AddOutput({});
    batch.AddSequence({4}, 5, {1, 4});
    batch.AddOutput({});
    in_ = std::move(batch).Build();
    // What the builder derived, spelled out: the cases below break one field of it at a time.
    ASSERT_EQ(in_.positions, (std::vector<int32_t>{0, 1, 2, 5}));
    ASSERT_EQ(in_.query_start, (std::vector<int32_t>{0, 3, 4}));
    ASSERT_EQ(in_.context_lens, (std::vector<int32_t>{3, 6}));
    ASSERT_EQ(in_.block_tables, (std::vector<int32_t>{6, -1, 1, 4}));
    ASSERT_EQ(in_.slot_mapping, (std::vector<int32_t>{24, 25, 26, 17}));
  }
  std::string Error() { return std::string(in_.Validate(config_, kv_).message()); }
  ModelConfig config_;
  KvCacheSpec kv_;
  ForwardInput in_;
};

TEST_F(ValidateTest, AcceptsAConsistentBatch) { EXPECT_TRUE(in_.Validate(config_, kv_).ok()) << Error(); }
TEST_F(ValidateTest, TokenIdOutOfVocab) {
  in_.token_ids[1] = 100;
  EXPECT_THAT(Error(), HasSubstr("token_ids"));
}
TEST_F(ValidateTest, NegativePosition) {
  in_.positions[0] = -1;
  EXPECT_THAT(Error(), HasSubstr("positions"));
}
TEST_F(ValidateTest, PositionBeyondContext) {
  in_.positions[3] = 64;
  EXPECT_THAT(Error(), HasSubstr("positions"));
}
TEST_F(ValidateTest, PositionsInconsistentWithContextLens) {
  in_.context_lens[1] = 7;
  EXPECT_THAT(Error(), HasSubstr("positions"));
}
TEST_F(ValidateTest, SizesDisagree) {
  in_.positions.pop_back();
  EXPECT_THAT(Error(), HasSubstr("positions"));
  SetUp();
  in_.context_lens.pop_back();
  EXPECT_THAT(Error(), HasSubstr("context_lens"));
  SetUp();
  in_.block_tables.pop_back();
  EXPECT_THAT(Error(), HasSubstr("block_tables"));
  SetUp();
  in_.query_start.back() = 3;
  EXPECT_THAT(Error(), HasSubstr("query_start"));
}
TEST_F(ValidateTest, BlockIdOutOfRange) {
  in_.block_tables[3] = 8;
  EXPECT_THAT(Error(), HasSubstr("block_tables"));
}
TEST_F(ValidateTest, SlotOutsideTheSequenceBlocks) {
  in_.slot_mapping[3] = 21;  // block 5 is not seq 1's
  EXPECT_THAT(Error(), HasSubstr("slot_mapping"));
}
TEST_F(ValidateTest, OutputRowOutOfRange) {
  in_.outputs[1].token_index = 4;
  EXPECT_THAT(Error(), HasSubstr("outputs"));
}
TEST_F(ValidateTest, BadSamplingParams) {
  in_.outputs[0].params.top_p = 0.0f;
  EXPECT_THAT(Error(), HasSubstr("top_p"));
}
TEST_F(ValidateTest, BlockCopyOutOfRange) {
  in_.block_copies = {{1, 9}};
  EXPECT_THAT(Error(), HasSubstr("block_copies"));
}

TEST(CpuBackendTest, ForwardRejectsInvalidInputAndStaysUsable) {
  auto backend = MakeBackend(GoldenDir("forward_gqa"), 4, 8, 2);
  ForwardBatchBuilder batch(8);
  batch.AddSequence({1000}, 0, {0});  // beyond the vocabulary: the builder does not look at ids, Forward does
  ForwardInput in = std::move(batch).Build();
  ForwardOutput out;
  EXPECT_EQ(backend->Forward(in, &out).code(), absl::StatusCode::kInvalidArgument);
  in.token_ids = {10};
  EXPECT_TRUE(backend->Forward(in, &out).ok());
}

}  // namespace
}  // namespace llama
