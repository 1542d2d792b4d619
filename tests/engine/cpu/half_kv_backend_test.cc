// The CPU backend with a half-precision KV cache (CpuBackendOptions::kv_dtype f16 / bf16), whole forward passes of
// a random GQA model: logits close to the fp32 cache's, batch invariance bit for bit, copy-on-write block copies.
// Run on every forced ISA path too (tests/CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/paged_attention.h"
#include "engine/forward_batch.h"
#include "engine/model/weights.h"
#include "gtest/gtest.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

// head_dim 32 (a multiple of 16 and of 8), 4 query heads over 2 KV heads, 3 layers.
ModelConfig Config() {
  return testing::TinyConfig(
      {.hidden = 128, .intermediate = 192, .layers = 3, .heads = 4, .kv_heads = 2, .vocab = 96, .context = 160});
}

constexpr int kBlockSize = 8;

std::unique_ptr<CpuBackend> MakeBackend(KvDtype dtype, int threads, int num_blocks = 64) {
  CpuBackendOptions options;
  options.num_threads = threads;
  options.block_size = kBlockSize;
  options.num_blocks = num_blocks;
  options.kv_dtype = dtype;
  // Weights of scale 0.1 (not the default 0.02) so that scores span a few units and attention is far from uniform.
  auto backend = CpuBackend::Create(MakeRandomWeights(Config(), 11, 0.1f), options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  return backend.ok() ? std::move(*backend) : nullptr;
}

// Three sequences: prompts of 37, 5 and 90 tokens prefilled together, then 12 decode steps of all three (fixed
// tokens, not sampled ones, so every backend sees the same inputs). Each step's logits of every sequence, in order.
struct Scenario {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> blocks;  // disjoint, scattered
  std::vector<std::vector<int32_t>> decode;  // [step][seq]

  Scenario() {
    std::mt19937 rng(12);
    std::uniform_int_distribution<int32_t> tok(0, Config().vocab_size - 1);
    for (int len : {37, 5, 90}) {
      std::vector<int32_t> p(len);
      for (int32_t& t : p) t = tok(rng);
      prompts.push_back(p);
    }
    std::vector<int32_t> ids(64);
    for (int i = 0; i < 64; ++i) ids[i] = i;
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int s = 0; s < 3; ++s) blocks.emplace_back(ids.begin() + 20 * s, ids.begin() + 20 * (s + 1));
    for (int step = 0; step < 12; ++step) decode.push_back({tok(rng), tok(rng), tok(rng)});
  }

  static ForwardInput Finish(ForwardBatchBuilder batch) {
    ForwardInput in = std::move(batch).Build();
    in.return_logits = true;
    return in;
  }

  static OutputRow NoSample() {
    OutputRow row;
    row.sample = false;
    return row;
  }

  // The steps batched: one prefill step of all prompts, then the decode steps.
  std::vector<ForwardInput> Batched() const {
    std::vector<ForwardInput> steps;
    ForwardBatchBuilder prefill(kBlockSize);
    for (int s = 0; s < 3; ++s) {
      prefill.AddSequence(prompts[s], 0, blocks[s]);
      prefill.AddOutput(NoSample());
    }
    steps.push_back(Finish(std::move(prefill)));
    for (size_t step = 0; step < decode.size(); ++step) {
      ForwardBatchBuilder b(kBlockSize);
      for (int s = 0; s < 3; ++s) {
        b.AddSequence({decode[step][s]}, static_cast<int>(prompts[s].size() + step), blocks[s]);
        b.AddOutput(NoSample());
      }
      steps.push_back(Finish(std::move(b)));
    }
    return steps;
  }

  // The same steps with each sequence alone (sequence-major: all of seq 0's steps, then seq 1's, ...).
  std::vector<ForwardInput> Alone(int s) const {
    std::vector<ForwardInput> steps;
    ForwardBatchBuilder prefill(kBlockSize);
    prefill.AddSequence(prompts[s], 0, blocks[s]);
    prefill.AddOutput(NoSample());
    steps.push_back(Finish(std::move(prefill)));
    for (size_t step = 0; step < decode.size(); ++step) {
      ForwardBatchBuilder b(kBlockSize);
      b.AddSequence({decode[step][s]}, static_cast<int>(prompts[s].size() + step), blocks[s]);
      b.AddOutput(NoSample());
      steps.push_back(Finish(std::move(b)));
    }
    return steps;
  }
};

// Logits of every step, [step][seq · vocab].
std::vector<std::vector<float>> RunBatched(CpuBackend* backend, const Scenario& sc) {
  std::vector<std::vector<float>> logits;
  for (const ForwardInput& in : sc.Batched()) {
    ForwardOutput out;
    EXPECT_TRUE(backend->Forward(in, &out).ok());
    logits.push_back(out.logits);
  }
  return logits;
}

// A sequence's logits do not depend on the rest of the batch or on the threads with a half cache either: the
// rounding happens once per K/V element when it is written, the same element whatever the batch, and attention
// reads it back the same way.
TEST(HalfKvBackendTest, BatchCompositionAndThreadsDoNotChangeLogits) {
  const Scenario sc;
  const int vocab = Config().vocab_size;
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    auto together = MakeBackend(d, 2);
    auto alone = MakeBackend(d, 3);
    ASSERT_NE(together, nullptr);
    ASSERT_NE(alone, nullptr);
    const auto batched = RunBatched(together.get(), sc);
    for (int s = 0; s < 3; ++s) {
      const std::vector<ForwardInput> steps = sc.Alone(s);
      for (size_t step = 0; step < steps.size(); ++step) {
        ForwardOutput out;
        ASSERT_TRUE(alone->Forward(steps[step], &out).ok());
        const std::vector<float> want(batched[step].begin() + s * vocab, batched[step].begin() + (s + 1) * vocab);
        EXPECT_EQ(out.logits, want) << KvDtypeName(d) << " seq " << s << " step " << step;
      }
    }
  }
}

// Half cache against fp32 cache: the logits of every step within a tolerance relative to the logits' spread. The
// cache's rounding is a relative perturbation of at most u per K/V element (2^-11 f16, 2^-8 bf16); the attention
// kernel test (kv_dtype_test.cc) bounds what one layer's attention output moves by (about u times the values'
// magnitude for these O(1) activations). Through 3 layers of residual blocks and the output projection that
// perturbation is amplified by the network's gain, which a derivation cannot pin down for random weights, so the
// tolerance is measured: the largest change over this scenario was 1.5 u · max |logit| for f16 and 2.3 u for
// bf16 (printed below, the same on every ISA path), and the test allows 8 u · max |logit|, 3.5x margin or more;
// reading a wrong element or losing the rounding would be far larger (a truncating bf16 alone doubles the error's
// bound, and a misplaced row is an O(1) change).
TEST(HalfKvBackendTest, LogitsAreCloseToTheFp32Cache) {
  const Scenario sc;
  auto f32 = MakeBackend(KvDtype::kF32, 2);
  ASSERT_NE(f32, nullptr);
  const auto want = RunBatched(f32.get(), sc);
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    const double u = d == KvDtype::kF16 ? 0x1p-11 : 0x1p-8;
    auto half = MakeBackend(d, 2);
    ASSERT_NE(half, nullptr);
    const auto got = RunBatched(half.get(), sc);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    bool any_difference = false;
    for (size_t step = 0; step < want.size(); ++step) {
      ASSERT_EQ(got[step].size(), want[step].size());
      double scale = 0;
      for (float x : want[step]) scale = std::max(scale, std::fabs(static_cast<double>(x)));
      for (size_t i = 0; i < want[step].size(); ++i) {
        const double err = std::fabs(static_cast<double>(got[step][i]) - want[step][i]);
        any_difference = any_difference || err > 0;
        worst = std::max(worst, err / (u * scale));
        EXPECT_LE(err, 8 * u * scale) << KvDtypeName(d) << " step " << step << " logit " << i;
      }
    }
    EXPECT_TRUE(any_difference) << "the half cache should round something";
    std::printf("%s: max |logit error| = %.3f u · max |logit|\n", KvDtypeName(d), worst);
  }
}

// Copy-on-write with a half cache: copying a partial block (bytes of 2-byte elements) forks the sequence exactly.
TEST(HalfKvBackendTest, BlockCopyForksASequence) {
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    auto backend = MakeBackend(d, 2, 16);
    ASSERT_NE(backend, nullptr);
    ForwardBatchBuilder prefill(kBlockSize);
    prefill.AddSequence({5, 17, 42, 3, 9, 60, 1, 2, 3, 4, 80, 7}, 0, {9, 4});  // block 9 full, block 4 half
    ForwardOutput out;
    ASSERT_TRUE(backend->Forward(std::move(prefill).Build(), &out).ok());
    ForwardBatchBuilder batch(kBlockSize);
    batch.AddBlockCopy(4, 13);
    batch.AddSequence({7}, 12, {9, 4});
    batch.AddOutput(Scenario::NoSample());
    batch.AddSequence({7}, 12, {9, 13});
    batch.AddOutput(Scenario::NoSample());
    ForwardInput decode = Scenario::Finish(std::move(batch));
    ASSERT_TRUE(backend->Forward(decode, &out).ok());
    const int vocab = Config().vocab_size;
    ASSERT_EQ(out.logits.size(), 2u * vocab);
    EXPECT_EQ(std::vector<float>(out.logits.begin(), out.logits.begin() + vocab),
              std::vector<float>(out.logits.begin() + vocab, out.logits.end()))
        << KvDtypeName(d);
  }
}

TEST(HalfKvBackendTest, CreationRejectsAHeadDimBeyondTheHalfKernels) {
  CpuBackendOptions options;
  options.num_threads = 1;
  options.num_blocks = 2;
  options.kv_dtype = KvDtype::kF16;
  const ModelConfig wide = testing::TinyConfig({.hidden = 2 * (kMaxHalfKvHeadDim + 8), .intermediate = 8,
                                                .layers = 1, .heads = 2, .kv_heads = 1, .vocab = 4, .context = 8});
  auto backend = CpuBackend::Create(MakeRandomWeights(wide, 1), options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(backend.status().message().find("head_dim"), std::string::npos) << backend.status();
}

}  // namespace
}  // namespace llama
