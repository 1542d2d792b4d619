// The device sampler against the CPU SampleToken on identical logits: the same counter-based uniform and the same
// candidate order, so the tokens must be identical (a tie at a CDF boundary has probability ~1e-7 per draw on
// these continuous random logits).
#include "base/check.h"
#include "engine/cuda/sampling.cuh"
#include "engine/sampling.h"
#include "tests/engine/cuda/cuda_test_util.h"

namespace llama::cuda {
namespace {

using testing::RandomVector;
using testing::ToDevice;
using testing::ToHost;

SamplingParams Params(float temperature, int top_k, float top_p, float penalty) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.repetition_penalty = penalty;
  return p;
}

std::vector<int32_t> SampleOnDevice(const std::vector<float>& logits, int vocab, const std::vector<OutputRow>& rows) {
  DeviceBuffer d_logits = ToDevice(logits);
  DeviceBuffer d_tokens = std::move(*DeviceBuffer::Allocate(rows.size() * 4));
  DeviceSampler sampler;
  CHECK_OK(sampler.Sample(d_logits.as<float>(), vocab, rows, d_tokens.as<int32_t>(), nullptr));
  std::vector<int32_t> tokens(rows.size());
  CHECK_EQ(cudaDeviceSynchronize(), cudaSuccess);
  CHECK_EQ(cudaMemcpy(tokens.data(), d_tokens.get(), rows.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  // The sampler must not touch the logits (they may be returned to the caller).
  EXPECT_EQ(ToHost(d_logits, logits.size()), logits);
  return tokens;
}

TEST(DeviceSamplerTest, MatchesCpuSampleTokenForEveryMode) {
  const int vocab = 32000;
  const std::vector<SamplingParams> modes = {
      Params(0.0f, 0, 1.0f, 1.0f),  Params(1.0f, 0, 1.0f, 1.0f),  Params(0.7f, 0, 1.0f, 1.0f),
      Params(0.8f, 40, 1.0f, 1.0f), Params(1.0f, 0, 0.9f, 1.0f),  Params(0.6f, 50, 0.95f, 1.0f),
      Params(1.0f, 1, 1.0f, 1.0f),  Params(1.2f, 0, 1.0f, 1.3f),  Params(0.0f, 0, 1.0f, 1.5f),
      Params(0.9f, 20, 0.8f, 1.2f), Params(1.0f, vocab, 1.0f, 1.0f), Params(2.0f, 0, 0.5f, 1.0f)};
  int compared = 0;
  for (int round = 0; round < 8; ++round) {
    std::vector<OutputRow> rows;
    for (size_t m = 0; m < modes.size(); ++m) {
      OutputRow row;
      row.params = modes[m];
      row.seed = 1000 * round + m;
      row.step = 3 * round + 1;
      // Penalise the current favourites too, so the penalty changes the outcome.
      row.penalty_tokens = {1, 7, 42, 31999, static_cast<int32_t>(100 + m)};
      rows.push_back(row);
    }
    OutputRow off;
    off.sample = false;
    rows.push_back(off);
    std::vector<float> logits = RandomVector(rows.size() * vocab, 100 + round, 3.0f);
    for (size_t r = 0; r < rows.size(); ++r) logits[r * vocab + 42] += 8.0f;  // a strong token the penalty hits
    const std::vector<int32_t> got = SampleOnDevice(logits, vocab, rows);
    for (size_t r = 0; r < rows.size(); ++r) {
      if (!rows[r].sample) {
        EXPECT_EQ(got[r], -1);
        continue;
      }
      std::vector<float> row_logits(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
      const int32_t want = SampleToken(absl::MakeSpan(row_logits), rows[r].params, rows[r].seed, rows[r].step,
                                       rows[r].penalty_tokens);
      EXPECT_EQ(got[r], want) << "round " << round << " mode " << r;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 8 * 12);
}

TEST(DeviceSamplerTest, GreedyTiesGoToTheLowestId) {
  const int vocab = 5000;
  std::vector<float> logits = RandomVector(vocab, 5);
  logits[4000] = 50.0f;
  logits[1234] = 50.0f;
  logits[4999] = 50.0f;
  OutputRow row;
  row.params.temperature = 0.0f;
  EXPECT_EQ(SampleOnDevice(logits, vocab, {row})[0], 1234);
}

TEST(DeviceSamplerTest, SameSeedAndStepGiveTheSameTokenAcrossBatchPositions) {
  const int vocab = 32000;
  const std::vector<float> one = RandomVector(vocab, 9, 2.0f);
  std::vector<float> logits;
  std::vector<OutputRow> rows;
  for (int r = 0; r < 16; ++r) {
    logits.insert(logits.end(), one.begin(), one.end());
    OutputRow row;
    row.params = Params(1.0f, 0, 0.9f, 1.0f);
    row.seed = 77;
    row.step = 5;
    rows.push_back(row);
  }
  const std::vector<int32_t> got = SampleOnDevice(logits, vocab, rows);
  for (int32_t t : got) EXPECT_EQ(t, got[0]);
}

}  // namespace
}  // namespace llama::cuda

LLAMA_CUDA_TEST_MAIN();
