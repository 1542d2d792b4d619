// The named model shapes (--dummy_weights): the published Llama 2 configurations, and unknown names refused.
#include "engine/model/model_shapes.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace llama {
namespace {

TEST(ModelShapesTest, Llama2SevenBHasThePublishedShape) {
  const ModelConfig c = *NamedModelConfig("llama-2-7b");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 11008);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_TRUE(c.Validate().ok());
  // 6.74e9 parameters (embed + 32 layers + lm_head): 13.5 GB in bf16, the bandwidth floor's numerator.
  const int64_t per_layer = 4LL * 4096 * 4096 + 3LL * 4096 * 11008 + 2 * 4096;
  const int64_t params = 2LL * 32000 * 4096 + 32 * per_layer + 4096;
  EXPECT_EQ(params, 6738415616LL);
}

TEST(ModelShapesTest, ThirteenBAndTinyValidateAndUnknownNamesAreRefused) {
  EXPECT_EQ(NamedModelConfig("llama-2-13b")->num_hidden_layers, 40);
  const ModelConfig tiny = *NamedModelConfig("tiny");
  EXPECT_TRUE(tiny.Validate().ok());
  EXPECT_EQ(tiny.group_size(), 4);
  EXPECT_EQ(NamedModelConfig("llama-2-70b").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ModelShapesTest, TinyLlamaAndStories15MHaveTheirPublishedShapes) {
  const ModelConfig t = *NamedModelConfig("tinyllama-1.1b");
  EXPECT_EQ(t.hidden_size, 2048);
  EXPECT_EQ(t.intermediate_size, 5632);
  EXPECT_EQ(t.num_hidden_layers, 22);
  EXPECT_EQ(t.num_attention_heads, 32);
  EXPECT_EQ(t.num_key_value_heads, 4);
  EXPECT_EQ(t.max_position_embeddings, 2048);
  EXPECT_FALSE(t.tie_word_embeddings);
  EXPECT_TRUE(t.Validate().ok());
  const ModelConfig s = *NamedModelConfig("stories15M");
  EXPECT_EQ(s.hidden_size, 288);
  EXPECT_EQ(s.intermediate_size, 768);
  EXPECT_EQ(s.num_hidden_layers, 6);
  EXPECT_EQ(s.num_attention_heads, 6);
  EXPECT_EQ(s.num_key_value_heads, 6);
  EXPECT_EQ(s.max_position_embeddings, 256);
  EXPECT_EQ(s.vocab_size, 32000);
  EXPECT_TRUE(s.tie_word_embeddings);
  EXPECT_TRUE(s.Validate().ok());
  // The error lists every name.
  EXPECT_NE(NamedModelConfig("x").status().message().find("tinyllama-1.1b, stories15M"), absl::string_view::npos);
}

}  // namespace
}  // namespace llama
