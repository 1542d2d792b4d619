// config.json parsing and validation, and the model loader: random weights survive SaveModel/LoadModelWeights
// bit-exactly (single file and sharded), and a missing or mis-shaped tensor is an error naming it.
#include "engine/model/weights.h"

#include <malloc.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "base/check.h"
#include "engine/model/config.h"
#include "engine/model/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kBaseConfig[] =
    R"({"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 40, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
        "rope_theta": 500000.0, "tie_word_embeddings": false})";

ModelConfig SmallConfig() {
  auto c = ParseModelConfig(kBaseConfig);
  CHECK_OK(c.status());
  return *c;
}

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/weights_test_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

absl::Status ParseStatus(const std::string& json) { return ParseModelConfig(json).status(); }

TEST(ModelConfigTest, ParsesFieldsAndDefaults) {
  ModelConfig c = SmallConfig();
  EXPECT_EQ(c.hidden_size, 16);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim(), 4);
  EXPECT_EQ(c.group_size(), 2);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(c.rope_scaling_factor, 1.0f);
  EXPECT_EQ(c.num_labels, 0);

  auto d = ParseModelConfig(R"({"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                "num_attention_heads": 4, "vocab_size": 40})");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->num_key_value_heads, 4);  // defaults to num_attention_heads
  EXPECT_EQ(d->max_position_embeddings, 2048);
  EXPECT_FALSE(d->tie_word_embeddings);
}

TEST(ModelConfigTest, MissingOrMistypedFieldIsNamed) {
  for (const char* field : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                            "vocab_size"}) {
    nlohmann::json j = nlohmann::json::parse(kBaseConfig);
    j.erase(field);
    EXPECT_THAT(ParseStatus(j.dump()).message(), AllOf(HasSubstr(field), HasSubstr("missing"))) << field;
  }
  nlohmann::json j = nlohmann::json::parse(kBaseConfig);
  j["num_hidden_layers"] = "two";
  EXPECT_THAT(ParseStatus(j.dump()).message(), AllOf(HasSubstr("num_hidden_layers"), HasSubstr("integer")));
  j = nlohmann::json::parse(kBaseConfig);
  j["tie_word_embeddings"] = 1;
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("tie_word_embeddings"));
  EXPECT_THAT(ParseStatus("{not json").message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(ParseStatus("[1]").message(), HasSubstr("object"));
}

TEST(ModelConfigTest, ValidationNamesTheField) {
  auto with = [](const std::string& field, nlohmann::json value) {
    nlohmann::json j = nlohmann::json::parse(kBaseConfig);
    j[field] = value;
    return ParseStatus(j.dump());
  };
  EXPECT_THAT(with("hidden_size", 0).message(), HasSubstr("hidden_size"));
  EXPECT_THAT(with("vocab_size", -3).message(), HasSubstr("vocab_size"));
  EXPECT_THAT(with("num_attention_heads", 3).message(),
              AllOf(HasSubstr("num_attention_heads"), HasSubstr("does not divide hidden_size 16")));
  EXPECT_THAT(with("num_key_value_heads", 3).message(),
              AllOf(HasSubstr("num_key_value_heads"), HasSubstr("does not divide num_attention_heads 4")));
  EXPECT_THAT(with("hidden_size", 12).message(), HasSubstr("odd head_dim 3"));  // 12 / 4 heads
  EXPECT_THAT(with("rms_norm_eps", 0.0).message(), HasSubstr("rms_norm_eps"));
  EXPECT_THAT(with("rope_theta", -1.0).message(), HasSubstr("rope_theta"));
  EXPECT_THAT(with("eos_token_id", 40).message(), HasSubstr("eos_token_id"));
  EXPECT_THAT(with("max_position_embeddings", 0).message(), HasSubstr("max_position_embeddings"));
}

TEST(ModelConfigTest, RopeScalingLinear) {
  for (const char* key : {"type", "rope_type"}) {
    nlohmann::json j = nlohmann::json::parse(kBaseConfig);
    j["rope_scaling"] = {{key, "linear"}, {"factor", 4.0}};
    auto c = ParseModelConfig(j.dump());
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_FLOAT_EQ(c->rope_scaling_factor, 4.0f);
    // ...and survives ModelConfigToJson.
    auto again = ParseModelConfig(ModelConfigToJson(*c));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FLOAT_EQ(again->rope_scaling_factor, 4.0f);
  }
  nlohmann::json j = nlohmann::json::parse(kBaseConfig);
  j["rope_scaling"] = nullptr;
  EXPECT_FLOAT_EQ(ParseModelConfig(j.dump())->rope_scaling_factor, 1.0f);
  j["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_THAT(ParseStatus(j.dump()), testing::Property(&absl::Status::code, absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseStatus(j.dump()).message(), AllOf(HasSubstr("rope_scaling"), HasSubstr("dynamic")));
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 0.5}};
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("rope_scaling.factor"));
  j["rope_scaling"] = {{"type", "linear"}};
  EXPECT_THAT(ParseStatus(j.dump()).message(), HasSubstr("rope_scaling.factor"));
}

TEST(ModelConfigTest, SequenceClassificationLabels) {
  nlohmann::json j = nlohmann::json::parse(kBaseConfig);
  j["architectures"] = {"LlamaForSequenceClassification"};
  EXPECT_EQ(ParseModelConfig(j.dump())->num_labels, 2);  // HF's default when id2label is omitted
  j["id2label"] = {{"0", "LABEL_0"}};
  EXPECT_EQ(ParseModelConfig(j.dump())->num_labels, 1);
  j["num_labels"] = 3;
  EXPECT_EQ(ParseModelConfig(j.dump())->num_labels, 3);
  j["architectures"] = {"LlamaForCausalLM"};
  EXPECT_EQ(ParseModelConfig(j.dump())->num_labels, 0);
}

TEST(ModelConfigTest, JsonRoundTrip) {
  ModelConfig c = SmallConfig();
  c.rope_scaling_factor = 2.0f;
  c.num_labels = 1;
  c.bos_token_id = 5;
  c.eos_token_id = 7;
  const std::string text = ModelConfigToJson(c);
  EXPECT_THAT(text, AllOf(HasSubstr("\"model_type\": \"llama\""), HasSubstr("LlamaForSequenceClassification"),
                          HasSubstr("\"rms_norm_eps\": 1e-06")));
  auto d = ParseModelConfig(text);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->hidden_size, c.hidden_size);
  EXPECT_EQ(d->intermediate_size, c.intermediate_size);
  EXPECT_EQ(d->num_hidden_layers, c.num_hidden_layers);
  EXPECT_EQ(d->num_key_value_heads, c.num_key_value_heads);
  EXPECT_EQ(d->vocab_size, c.vocab_size);
  EXPECT_EQ(d->max_position_embeddings, c.max_position_embeddings);
  EXPECT_EQ(d->rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(d->rope_theta, c.rope_theta);
  EXPECT_EQ(d->rope_scaling_factor, c.rope_scaling_factor);
  EXPECT_EQ(d->tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(d->bos_token_id, 5);
  EXPECT_EQ(d->eos_token_id, 7);
  EXPECT_EQ(d->num_labels, 1);
}

TEST(ModelConfigTest, KvBytesPerToken) {
  ModelConfig c = SmallConfig();  // 2 layers, 2 kv heads, head_dim 4
  EXPECT_EQ(c.KvBytesPerToken(2), 2 * 2 * 2 * 4 * 2);
}

void ExpectSameWeights(const ModelWeights& a, const ModelWeights& b) {
  EXPECT_EQ(a.embed_tokens, b.embed_tokens);
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    EXPECT_EQ(a.layers[l].attn_norm, b.layers[l].attn_norm);
    EXPECT_EQ(a.layers[l].wq, b.layers[l].wq);
    EXPECT_EQ(a.layers[l].wk, b.layers[l].wk);
    EXPECT_EQ(a.layers[l].wv, b.layers[l].wv);
    EXPECT_EQ(a.layers[l].wo, b.layers[l].wo);
    EXPECT_EQ(a.layers[l].ffn_norm, b.layers[l].ffn_norm);
    EXPECT_EQ(a.layers[l].w_gate, b.layers[l].w_gate);
    EXPECT_EQ(a.layers[l].w_up, b.layers[l].w_up);
    EXPECT_EQ(a.layers[l].w_down, b.layers[l].w_down);
  }
  EXPECT_EQ(a.final_norm, b.final_norm);
  EXPECT_EQ(a.lm_head, b.lm_head);
  EXPECT_EQ(a.score, b.score);
  EXPECT_EQ(a.score_bias, b.score_bias);
}

TEST(RandomWeightsTest, ShapesDeterminismAndScale) {
  ModelConfig c = SmallConfig();
  ModelWeights a = MakeRandomWeights(c, 7, 0.02f);
  ModelWeights b = MakeRandomWeights(c, 7, 0.02f);
  ModelWeights other = MakeRandomWeights(c, 8, 0.02f);
  ExpectSameWeights(a, b);
  EXPECT_NE(a.layers[0].wq, other.layers[0].wq);
  EXPECT_NE(a.layers[0].wq, a.layers[1].wq);  // tensors are not copies of each other
  EXPECT_EQ(a.embed_tokens.size(), 40u * 16);
  EXPECT_EQ(a.layers[0].wq.size(), 16u * 16);
  EXPECT_EQ(a.layers[0].wk.size(), 8u * 16);
  EXPECT_EQ(a.layers[0].w_down.size(), 16u * 32);
  EXPECT_EQ(a.lm_head.size(), 40u * 16);
  EXPECT_TRUE(a.score.empty());
  // 640 normal(0, 0.02) samples: the sample std is within 15% of 0.02 with overwhelming probability.
  double sum2 = 0;
  for (float v : a.embed_tokens) sum2 += v * v;
  EXPECT_NEAR(std::sqrt(sum2 / a.embed_tokens.size()), 0.02, 0.003);
  for (float v : a.final_norm) EXPECT_NEAR(v, 1.0f, 0.6f);
}

TEST(RandomWeightsTest, LargeTensorIsDeterministic) {
  // More than one 1M-value chunk: chunks are seeded independently, so two runs agree exactly.
  ModelConfig c = SmallConfig();
  c.vocab_size = 70000;
  c.hidden_size = 32;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  EXPECT_EQ(MakeRandomWeights(c, 3).embed_tokens, MakeRandomWeights(c, 3).embed_tokens);
}

TEST(LoadModelWeightsTest, SaveLoadRoundTripIsExact) {
  for (bool tied : {false, true}) {
    ModelConfig c = SmallConfig();
    c.tie_word_embeddings = tied;
    ModelWeights w = MakeRandomWeights(c, 11);
    const std::string dir = FreshDir(tied ? "tied" : "untied");
    ASSERT_TRUE(SaveModel(w, dir).ok());
    auto loaded = LoadModelWeights(dir);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ExpectSameWeights(w, *loaded);
    EXPECT_EQ(loaded->config.tie_word_embeddings, tied);
    EXPECT_EQ(&loaded->output_projection(), tied ? &loaded->embed_tokens : &loaded->lm_head);
  }
}

TEST(LoadModelWeightsTest, RewardModelRoundTrip) {
  ModelConfig c = SmallConfig();
  c.num_labels = 1;
  ModelWeights w = MakeRandomWeights(c, 5);
  EXPECT_EQ(w.score.size(), 16u);
  EXPECT_TRUE(w.lm_head.empty());
  w.score_bias = {0.25f};
  const std::string dir = FreshDir("reward");
  ASSERT_TRUE(SaveModel(w, dir).ok());
  auto loaded = LoadModelWeights(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->is_reward_model());
  ExpectSameWeights(w, *loaded);
}

// Rewrites dir/model.safetensors with `tensors` after applying `edit` to the saved set.
void RewriteCheckpoint(const std::string& dir,
                       const std::function<void(std::vector<SafetensorsWriteTensor>&)>& edit,
                       std::vector<std::vector<float>>* storage) {
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  CHECK_OK(file.status());
  std::vector<SafetensorsWriteTensor> tensors;
  storage->reserve(file->tensors().size());
  for (const auto& t : file->tensors()) {
    storage->push_back(*file->ReadF32(t.name));
    tensors.push_back({t.name, t.shape, storage->back()});
  }
  edit(tensors);
  CHECK_OK(WriteSafetensors(dir + "/model.safetensors", tensors));
}

TEST(LoadModelWeightsTest, MissingTensorIsNamed) {
  const std::string dir = FreshDir("missing");
  ASSERT_TRUE(SaveModel(MakeRandomWeights(SmallConfig(), 1), dir).ok());
  std::vector<std::vector<float>> storage;
  RewriteCheckpoint(dir, [](auto& ts) {
    std::erase_if(ts, [](const auto& t) { return t.name == "model.layers.1.self_attn.k_proj.weight"; });
  }, &storage);
  auto loaded = LoadModelWeights(dir);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(),
              AllOf(HasSubstr("missing tensor 'model.layers.1.self_attn.k_proj.weight'"), HasSubstr("[8, 16]")));
}

// The safetensors twin of the GGUF block_count finding (fuzz/gguf_fuzzer): a config.json claiming 10^8 layers is
// refused when the checkpoint opens, before any per-layer allocation.
TEST(LoadModelWeightsTest, ImpossibleLayerCountIsRefusedAtOnce) {
  const std::string dir = FreshDir("layers");
  ASSERT_TRUE(SaveModel(MakeRandomWeights(SmallConfig(), 1), dir).ok());
  ModelConfig huge = SmallConfig();
  huge.num_hidden_layers = 100000000;
  std::ofstream(dir + "/config.json") << ModelConfigToJson(huge);
  auto loaded = LoadModelWeights(dir);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(loaded.status().message(),
              HasSubstr("config.json: num_hidden_layers 100000000 needs at least 900000000 tensors (9 per layer)"));
}

TEST(LoadModelWeightsTest, UntiedModelNeedsLmHead) {
  const std::string dir = FreshDir("no_lm_head");
  ASSERT_TRUE(SaveModel(MakeRandomWeights(SmallConfig(), 1), dir).ok());
  std::vector<std::vector<float>> storage;
  RewriteCheckpoint(dir, [](auto& ts) { std::erase_if(ts, [](const auto& t) { return t.name == "lm_head.weight"; }); },
                    &storage);
  EXPECT_THAT(LoadModelWeights(dir).status().message(), HasSubstr("'lm_head.weight'"));
}

TEST(LoadModelWeightsTest, WrongShapeNamesTensorAndBothShapes) {
  const std::string dir = FreshDir("shape");
  ASSERT_TRUE(SaveModel(MakeRandomWeights(SmallConfig(), 1), dir).ok());
  std::vector<std::vector<float>> storage;
  RewriteCheckpoint(dir, [](auto& ts) {
    for (auto& t : ts) {
      if (t.name == "model.layers.0.mlp.down_proj.weight") t.shape = {32, 16};  // transposed
    }
  }, &storage);
  EXPECT_THAT(LoadModelWeights(dir).status().message(),
              AllOf(HasSubstr("'model.layers.0.mlp.down_proj.weight'"), HasSubstr("has shape [32, 16]"),
                    HasSubstr("expected [16, 32]")));
}

TEST(LoadModelWeightsTest, ShardedCheckpoint) {
  ModelConfig c = SmallConfig();
  ModelWeights w = MakeRandomWeights(c, 9);
  const std::string dir = FreshDir("sharded");
  ASSERT_TRUE(SaveModel(w, dir).ok());
  // Split model.safetensors into two shards by tensor name parity and write the index.
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok());
  std::vector<std::vector<float>> storage;
  storage.reserve(file->tensors().size());
  std::vector<SafetensorsWriteTensor> shard[2];
  nlohmann::json index;
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const auto& t = file->tensors()[i];
    storage.push_back(*file->ReadF32(t.name));
    shard[i % 2].push_back({t.name, t.shape, storage.back()});
    index["weight_map"][t.name] = i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00001-of-00002.safetensors", shard[0]).ok());
  ASSERT_TRUE(WriteSafetensors(dir + "/model-00002-of-00002.safetensors", shard[1]).ok());
  std::filesystem::remove(dir + "/model.safetensors");
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  auto loaded = LoadModelWeights(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameWeights(w, *loaded);

  // An index that puts a tensor in the wrong shard is an error naming it.
  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  index["weight_map"]["model.embed_tokens.weight"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json", std::ios::trunc) << index.dump();
  EXPECT_THAT(LoadModelWeights(dir).status().message(), HasSubstr("does not contain it"));
}

TEST(LoadModelWeightsTest, MissingFilesAreErrors) {
  const std::string dir = FreshDir("empty");
  EXPECT_EQ(LoadModelWeights(dir).status().code(), absl::StatusCode::kNotFound);  // no config.json
  std::ofstream(dir + "/config.json") << kBaseConfig;
  EXPECT_THAT(LoadModelWeights(dir).status().message(), HasSubstr("model.safetensors"));
}

// The death test's child: loads `dir` under an address-space limit of what the process maps now plus
// `margin_bytes`, prints the status and exits 0 only for RESOURCE_EXHAUSTED.
[[noreturn]] void LoadUnderAddressSpaceLimit(const std::string& dir, int64_t margin_bytes) {
  malloc_trim(0);  // hand free heap memory back, so the limit is not spent on memory malloc already holds
  std::ifstream status("/proc/self/status");
  int64_t vm_kib = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmSize:", 0) == 0) vm_kib = std::stoll(line.substr(7));
  }
  rlimit limit;
  limit.rlim_cur = static_cast<rlim_t>((vm_kib << 10) + margin_bytes);
  limit.rlim_max = RLIM_INFINITY;
  setrlimit(RLIMIT_AS, &limit);
  const absl::Status s = LoadModelWeights(dir).status();
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::_Exit(s.code() == absl::StatusCode::kResourceExhausted ? 0 : 1);
}

// A loader that runs out of memory says so. The model: embeddings and lm_head of 64 MB each (allocations that big
// always get fresh pages from the kernel, so the limit below is what they can use), 138 MB in all in fp32, as many
// in the file. Under a limit of the mapped file + the embeddings + 24 MB, the embeddings and the layer load and
// lm_head cannot: RESOURCE_EXHAUSTED naming it, and the process lives on to say so. The child is a fresh process
// ("threadsafe" death tests re-run the binary for this test alone) and the checkpoint (zeros) is written from its
// one thread: worker threads' malloc arenas are address space the limit would count as used while glibc may still
// hand it to the loader.
TEST(LoadModelWeightsDeathTest, OutOfMemoryIsResourceExhausted) {
#ifdef LLAMA_UNDER_SANITIZER
  // ASan and TSan reserve terabytes of shadow address space and abort on a failed allocation instead of throwing
  // std::bad_alloc, so an RLIMIT_AS cap cannot be tested under them.
  GTEST_SKIP() << "RLIMIT_AS and a sanitizer's allocator do not mix";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  ModelConfig c = SmallConfig();
  c.hidden_size = 512;
  c.intermediate_size = 512;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.num_hidden_layers = 1;
  c.vocab_size = 32000;
  c.tie_word_embeddings = false;
  const std::string dir = FreshDir("oom");
  {
    const std::vector<float> zeros(static_cast<size_t>(c.vocab_size) * c.hidden_size, 0.0f);
    std::vector<SafetensorsWriteTensor> tensors;
    for (const TensorSpec& spec : ModelTensorSpecs(c)) {
      size_t n = 1;
      for (int64_t d : spec.shape) n *= static_cast<size_t>(d);
      tensors.push_back({spec.name, spec.shape, absl::MakeConstSpan(zeros.data(), n)});
    }
    ASSERT_TRUE(WriteSafetensors(dir + "/model.safetensors", tensors).ok());
    std::ofstream(dir + "/config.json") << ModelConfigToJson(c);
  }
  const int64_t file_bytes = static_cast<int64_t>(std::filesystem::file_size(dir + "/model.safetensors"));
  const int64_t embed_bytes = int64_t{4} * c.vocab_size * c.hidden_size;
  EXPECT_EXIT(LoadUnderAddressSpaceLimit(dir, file_bytes + embed_bytes + (int64_t{24} << 20)),
              ::testing::ExitedWithCode(0), "RESOURCE_EXHAUSTED.*cannot allocate 65536000 bytes for tensor lm_head.weight");
}

TEST(LoadModelWeightsTest, TensorNames) {
  EXPECT_EQ(LayerTensorName(3, "mlp.up_proj.weight"), "model.layers.3.mlp.up_proj.weight");
}

}  // namespace
}  // namespace llama
