// A reward model loaded from a saved directory in each CPU storage type: f32/bf16/q8_0 weights × f32/f16/bf16 KV
// against the f32 one (features and scores within tolerances derived from the types' rounding), and Load going
// straight from the mapped checkpoint into the storage type (no ModelWeights in between: the backend is made from
// the file's WeightSource, holds the q8_0 bytes, and the head is read from the file).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/model/weight_source.h"
#include "engine/model/weights.h"
#include "engine/reward/reward_model.h"
#include "gtest/gtest.h"
#include "tests/support/cpu_kernel_inputs.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

// GQA (4 query heads, 2 KV heads, head_dim 16) as a scalar reward model; every matrix has a multiple of 32 columns
// (q8_0), as in tests/engine/cpu/weights_dtype_test.cc.
ModelConfig GqaRewardConfig() {
  return testing::TinyConfig({.hidden = 64, .intermediate = 128, .layers = 2, .heads = 4, .kv_heads = 2,
                              .vocab = 96, .context = 64, .num_labels = 1});
}

// std 0.1 so the hidden states spread over O(1) (weights_dtype_test's reason); a bias so it is read too.
ModelWeights GqaRewardWeights() {
  ModelWeights w = MakeRandomWeights(GqaRewardConfig(), /*seed=*/11, /*scale=*/0.1f);
  w.score_bias = {0.25f};
  return w;
}

std::vector<std::vector<int32_t>> Sequences() {
  return {{1, 5, 17, 42, 3, 9, 60, 11, 88, 2}, {1, 70, 33, 33, 14, 95}, {1, 7}, {1, 30, 31, 32, 33, 34, 35, 36, 37,
                                                                             38, 39, 40, 41, 42, 43, 44, 45, 46, 47}};
}

CpuBackendOptions Options(WeightsDtype weights, KvDtype kv) {
  CpuBackendOptions o;
  o.num_threads = 2;
  o.block_size = 4;
  o.num_blocks = 32;
  o.weights_dtype = weights;
  o.kv_dtype = kv;
  return o;
}

class RewardModelDtypeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/reward_model_dtype_test_rm";
    ASSERT_TRUE(SaveModel(GqaRewardWeights(), dir_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<RewardModel> Load(WeightsDtype weights, KvDtype kv) {
    auto rm = RewardModel::Load(dir_, testing::CpuRewardBackends(Options(weights, kv)), {});
    EXPECT_TRUE(rm.ok()) << rm.status();
    return rm.ok() ? std::move(*rm) : nullptr;
  }

  std::string dir_;
};

// Bounds on the features (final-norm hidden states [4 sequences, 64]) against the f32 model, relative to their RMS
// (≈ 1: RMSNorm output times norm weights around 1), on the RMS of the difference and on its max.
//
// Weights: the derivation and measurements of tests/engine/cpu/weights_dtype_test.cc (bf16: each weight off by
// <= 2^-8 relative, ~0.2% RMS per matmul output; q8_0: weights and activations on a step of max|block| / 127,
// ~2% RMS) for its logits, which are these hidden states times one more matrix (the output projection, which
// carries the hidden states' relative error through and adds its own rounding): the hidden states are no further
// off than those logits, so the same bounds hold: bf16 RMS 1.5%, max 8%; q8_0 RMS 6%, max 25%. A defect (wrong
// scale, row, panel) moves them by O(their RMS), i.e. 100%.
//
// KV: each cached element is off by at most u relative (2^-11 f16, 2^-8 bf16); tests/engine/cpu/
// half_kv_backend_test.cc measured at most 2.3 u · max |output| through 3 layers and allows 8 u · max |output|,
// which is added here to both bounds (the two roundings are independent; their effects add at most linearly).
// Measured over seeds 1-6 and 11 of this model (any KV type): bf16 RMS 0.47-0.63%, max 1.5-2.5%; q8_0 RMS
// 2.1-3.1%, max 5.7-17.3% (the largest: seed 11, q8_0 with bf16 KV, the seed used here).
struct WeightsTolerance {
  WeightsDtype dtype;
  double rms, max;
};
constexpr WeightsTolerance kWeights[] = {
    {WeightsDtype::kF32, 0.0, 0.0}, {WeightsDtype::kBF16, 0.015, 0.08}, {WeightsDtype::kQ8_0, 0.06, 0.25}};
double KvUnit(KvDtype kv) { return kv == KvDtype::kF32 ? 0.0 : kv == KvDtype::kF16 ? 0x1p-11 : 0x1p-8; }

TEST_F(RewardModelDtypeTest, FeaturesAndScoresOfEveryStorageTypeAreCloseToF32) {
  const auto seqs = Sequences();
  auto f32 = Load(WeightsDtype::kF32, KvDtype::kF32);
  ASSERT_NE(f32, nullptr);
  auto ref_features = f32->Features(seqs);
  auto ref_scores = f32->Score(seqs);
  ASSERT_TRUE(ref_features.ok() && ref_scores.ok());
  const int dim = f32->config().hidden_size;
  const double rms = Rms(*ref_features);
  double max_abs = 0;
  for (float x : *ref_features) max_abs = std::max(max_abs, std::fabs(static_cast<double>(x)));
  ASSERT_GT(rms, 0.3);  // O(1) hidden states: the relative bounds mean something
  double head_norm = 0;  // ||score.weight||_2
  for (float h : f32->head()) head_norm += static_cast<double>(h) * h;
  head_norm = std::sqrt(head_norm);
  // The scores must not all sit at 0 or 1, where sigmoid hides any feature error.
  for (float s : *ref_scores) EXPECT_TRUE(s > 0.02f && s < 0.98f) << s;

  for (const WeightsTolerance& t : kWeights) {
    for (KvDtype kv : {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16}) {
      if (t.dtype == WeightsDtype::kF32 && kv == KvDtype::kF32) continue;
      SCOPED_TRACE(std::string(WeightsDtypeName(t.dtype)) + " weights, " + KvDtypeName(kv) + " KV");
      auto rm = Load(t.dtype, kv);
      ASSERT_NE(rm, nullptr);
      auto features = rm->Features(seqs);
      auto scores = rm->Score(seqs);
      ASSERT_TRUE(features.ok() && scores.ok());
      ASSERT_EQ(features->size(), ref_features->size());
      std::vector<float> diff(features->size());
      double max_diff = 0;
      for (size_t i = 0; i < diff.size(); ++i) {
        diff[i] = (*features)[i] - (*ref_features)[i];
        max_diff = std::max(max_diff, std::fabs(static_cast<double>(diff[i])));
      }
      const double kv_bound = 8 * KvUnit(kv) * max_abs;
      EXPECT_LT(Rms(diff), t.rms * rms + kv_bound);
      EXPECT_LT(max_diff, t.max * rms + kv_bound);
      EXPECT_GT(max_diff, 0.0) << "no rounding at all: the storage type was not applied";
      // Scores: |Δ sigmoid(z)| <= |Δz| / 4 and |Δz| = |head · Δh| <= ||head|| ||Δh|| (Cauchy-Schwarz), for each
      // sequence's own Δh; 1e-6 for the fp32 sums. With ||Δh|| <= sqrt(dim) · max bound this also bounds the
      // scores absolutely.
      double worst_score = 0;
      for (size_t s = 0; s < seqs.size(); ++s) {
        double dh = 0;
        for (int j = 0; j < dim; ++j) dh += static_cast<double>(diff[s * dim + j]) * diff[s * dim + j];
        const double ds = std::fabs(static_cast<double>((*scores)[s]) - (*ref_scores)[s]);
        worst_score = std::max(worst_score, ds);
        EXPECT_LE(ds, 0.25 * head_norm * std::sqrt(dh) + 1e-6) << "sequence " << s;
        EXPECT_LE(ds, 0.25 * head_norm * std::sqrt(dim) * (t.max * rms + kv_bound)) << "sequence " << s;
      }
      std::printf("%s weights, %s KV: features RMS diff %.3g%%, max %.3g%% of their RMS %.3g; max |score diff| %.3g\n",
                  WeightsDtypeName(t.dtype), KvDtypeName(kv), 100 * Rms(diff) / rms, 100 * max_diff / rms, rms,
                  worst_score);
    }
  }
}

// Load builds the backend from the checkpoint's own WeightSource (a mapped file, not host ModelWeights), which
// packs it into q8_0: the backend's bytes are those of the q8_0 matrices, not the fp32 ones.
TEST_F(RewardModelDtypeTest, LoadPacksTheMappedCheckpointIntoTheStorageType) {
  bool from_host_weights = true;
  int64_t weight_bytes = 0;
  WeightsDtype dtype = WeightsDtype::kF32;
  const RewardModel::BackendFactory cpu = testing::CpuRewardBackends(Options(WeightsDtype::kQ8_0, KvDtype::kBf16));
  auto rm = RewardModel::Load(
      dir_,
      [&](const WeightSource& source) -> absl::StatusOr<std::unique_ptr<Backend>> {
        from_host_weights = dynamic_cast<const InMemoryWeightSource*>(&source) != nullptr;
        auto backend = cpu(source);
        if (backend.ok()) {
          const auto* c = dynamic_cast<const CpuBackend*>(backend->get());
          if (c != nullptr) {
            weight_bytes = c->weight_bytes();
            dtype = c->weights_dtype();
          }
        }
        return backend;
      },
      {});
  ASSERT_TRUE(rm.ok()) << rm.status();
  EXPECT_FALSE(from_host_weights);
  EXPECT_EQ(dtype, WeightsDtype::kQ8_0);
  EXPECT_EQ((*rm)->kv_cache().dtype_bytes, 2);  // bf16 KV
  // From the layout (Q8PackedBytes), not the backend's own sum: the 16 matrices (7 per layer, embed_tokens,
  // score).
  const ModelConfig c = GqaRewardConfig();
  const int64_t hd = c.head_dim(), dim = c.hidden_size, ffn = c.intermediate_size;
  const std::vector<std::pair<int64_t, int64_t>> layer = {
      {c.num_attention_heads * hd, dim}, {c.num_key_value_heads * hd, dim}, {c.num_key_value_heads * hd, dim},
      {dim, c.num_attention_heads * hd}, {ffn, dim}, {ffn, dim}, {dim, ffn}};
  int64_t want = Q8PackedBytes(c.vocab_size, dim) + Q8PackedBytes(1, dim);
  int64_t f32_bytes = 4 * (c.vocab_size * dim + dim);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    for (const auto& [rows, cols] : layer) {
      want += Q8PackedBytes(rows, cols);
      f32_bytes += 4 * rows * cols;
    }
  }
  EXPECT_EQ(weight_bytes, want);
  EXPECT_LT(weight_bytes, f32_bytes / 3);
  // The head was read from the file: fp32 and exact, as saved.
  const ModelWeights saved = GqaRewardWeights();
  EXPECT_EQ((*rm)->head(), saved.score);
  EXPECT_FLOAT_EQ((*rm)->bias(), 0.25f);
}

TEST_F(RewardModelDtypeTest, LoadRefusesACausalLmWithAClearError) {
  const std::string lm_dir = dir_ + "_lm";
  ModelConfig c = GqaRewardConfig();
  c.num_labels = 0;
  ASSERT_TRUE(SaveModel(MakeRandomWeights(c, 1), lm_dir).ok());
  auto rm = RewardModel::Load(lm_dir, testing::CpuRewardBackends(Options(WeightsDtype::kQ8_0, KvDtype::kF32)), {});
  ASSERT_FALSE(rm.ok());
  EXPECT_EQ(rm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(rm.status().message().find("is not a reward model"), absl::string_view::npos) << rm.status();
  EXPECT_NE(rm.status().message().find(lm_dir), absl::string_view::npos) << rm.status();
  std::filesystem::remove_all(lm_dir);
}

}  // namespace
}  // namespace llama
