// WeightSource over in-memory weights: shapes, row reads, shape checks naming the tensor, and the round trip
// through MaterializeWeights.
#include "engine/model/weight_source.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "engine/model/weights.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

using ::testing::HasSubstr;

TEST(WeightSourceTest, SpecsFollowTheConfig) {
  ModelConfig c = testing::TinyConfig();
  std::vector<TensorSpec> specs = ModelTensorSpecs(c);
  // embed + 9 per layer + final norm + lm_head (the tiny config is untied).
  ASSERT_EQ(specs.size(), 1u + 9u * c.num_hidden_layers + 1u + (c.tie_word_embeddings ? 0u : 1u));
  EXPECT_EQ(specs.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(specs.front().shape, (std::vector<int64_t>{c.vocab_size, c.hidden_size}));
  EXPECT_EQ(specs[2].name, LayerTensorName(0, "self_attn.q_proj.weight"));
  ModelConfig rm = testing::TinyRewardConfig();
  EXPECT_EQ(ModelTensorSpecs(rm).back().name, "score.weight");
  EXPECT_EQ(ModelTensorSpecs(rm).back().shape, (std::vector<int64_t>{1, rm.hidden_size}));
}

TEST(WeightSourceTest, ReadsRowsOfEveryTensor) {
  ModelWeights w = MakeRandomWeights(testing::TinyConfig(), 7);
  InMemoryWeightSource source(&w);
  ASSERT_TRUE(CheckWeightShapes(source).ok());
  auto info = source.Info(LayerTensorName(1, "mlp.down_proj.weight"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->rows(), w.config.hidden_size);
  EXPECT_EQ(info->cols(), w.config.intermediate_size);
  std::vector<float> rows(2 * info->cols());
  ASSERT_TRUE(source.ReadRows(LayerTensorName(1, "mlp.down_proj.weight"), 3, 5, rows.data()).ok());
  for (int i = 0; i < 2 * info->cols(); ++i) EXPECT_EQ(rows[i], w.layers[1].w_down[3 * info->cols() + i]);
  auto norm = source.Info("model.norm.weight");
  ASSERT_TRUE(norm.ok());
  EXPECT_EQ(norm->rows(), 1);
  EXPECT_EQ(norm->cols(), w.config.hidden_size);
  EXPECT_EQ(source.Info("score.weight").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(HasScoreHead(source));
  EXPECT_TRUE(HasLmHead(source));
  EXPECT_EQ(source.ReadRows("model.norm.weight", 0, 2, rows.data()).code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightSourceTest, ShapeErrorsNameTheTensor) {
  ModelWeights w = MakeRandomWeights(testing::TinyConfig(), 7);
  w.layers[1].wk.resize(w.layers[1].wk.size() - 1);
  InMemoryWeightSource source(&w);
  absl::Status s = CheckWeightShapes(source);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(LayerTensorName(1, "self_attn.k_proj.weight")));
  w.layers[0].w_up.clear();
  InMemoryWeightSource missing(&w);
  EXPECT_THAT(CheckWeightShapes(missing).message(), HasSubstr(LayerTensorName(0, "mlp.up_proj.weight")));
}

TEST(WeightSourceTest, MaterializeRoundTrips) {
  ModelWeights w = MakeRandomWeights(testing::TinyRewardConfig(), 11);
  w.score_bias = {0.25f};
  InMemoryWeightSource source(&w);
  auto copy = MaterializeWeights(source);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ(copy->embed_tokens, w.embed_tokens);
  EXPECT_EQ(copy->layers[1].wq, w.layers[1].wq);
  EXPECT_EQ(copy->final_norm, w.final_norm);
  EXPECT_EQ(copy->score, w.score);
  EXPECT_EQ(copy->score_bias, w.score_bias);
  EXPECT_TRUE(copy->lm_head.empty());
}

// A source claiming tensors no memory can hold (4 TB of fp32): MaterializeWeights is RESOURCE_EXHAUSTED naming
// the tensor and the size, never a crash.
class ImpossibleSource : public WeightSource {
 public:
  ImpossibleSource() {
    config_ = testing::TinyConfig();
    config_.hidden_size = 1 << 20;
    config_.vocab_size = 1 << 20;
    config_.num_attention_heads = 1 << 14;
    config_.num_key_value_heads = 1 << 14;
  }
  const ModelConfig& config() const override { return config_; }
  absl::StatusOr<TensorInfo> Info(const std::string& name) const override {
    for (const TensorSpec& spec : ModelTensorSpecs(config_)) {
      if (spec.name == name) return TensorInfo{spec.shape, StoredDtype::kF32};
    }
    return absl::NotFoundError(name);
  }
  absl::Status ReadRows(const std::string&, int64_t, int64_t, float*) const override {
    return absl::InternalError("never reached: the allocation fails first");
  }

 private:
  ModelConfig config_;
};

TEST(WeightSourceTest, ImpossibleSizeIsResourceExhausted) {
#ifdef LLAMA_UNDER_SANITIZER
  // ASan reports an impossible allocation (allocation-size-too-big) and aborts instead of throwing std::bad_alloc.
  GTEST_SKIP() << "a sanitizer's allocator aborts on an impossible size";
#endif
  const absl::Status s = MaterializeWeights(ImpossibleSource()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("cannot allocate 4398046511104 bytes for tensor model.embed_tokens.weight"));
}

}  // namespace
}  // namespace llama
