// The llama2.c converter on the real stories15M checkpoint: every tensor against the raw .bin floats (q/k rows
// through the interleaved -> rotate-half permutation written out here independently), against numpy golden rows
// (tests/golden/make_llama2c_golden.py, which also proves that permutation right with two forwards), and GQA
// conversion as group means of the original heads.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/check.h"
#include "convert/llama2c.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/kv_head_pooling.h"
#include "engine/model/weights.h"
#include "engine/simple_generate.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

using ::testing::HasSubstr;

const std::string kBin = LLAMA_SOURCE_DIR "/models/.cache/stories15M.bin";
const std::string kGolden = LLAMA_SOURCE_DIR "/tests/golden/llama2c/stories15M_golden.json";
constexpr int kDim = 288, kHidden = 768, kLayers = 6, kHeads = 6, kHeadDim = 48, kVocab = 32000, kSeqLen = 256;

// The raw .bin as floats, with offsets written out from llama2.c's layout (stories15M: shared classifier).
struct RawBin {
  std::vector<int32_t> header;
  std::vector<float> f;  // everything after the 28-byte header

  static RawBin Read() {
    std::ifstream in(kBin, std::ios::binary);
    CHECK_OK(in ? absl::OkStatus() : absl::NotFoundError(kBin + " missing: run scripts/fetch-model.sh"));
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string bytes = ss.str();
    RawBin raw;
    raw.header.resize(7);
    std::memcpy(raw.header.data(), bytes.data(), 28);
    raw.f.resize((bytes.size() - 28) / 4);
    std::memcpy(raw.f.data(), bytes.data() + 28, raw.f.size() * 4);
    return raw;
  }
  // Offsets (in floats) of each array.
  static constexpr int64_t kEmb = 0;
  static constexpr int64_t kRmsAtt = kEmb + int64_t{kVocab} * kDim;
  static constexpr int64_t kWq = kRmsAtt + kLayers * kDim;
  static constexpr int64_t kWk = kWq + int64_t{kLayers} * kDim * kDim;
  static constexpr int64_t kWv = kWk + int64_t{kLayers} * kDim * kDim;
  static constexpr int64_t kWo = kWv + int64_t{kLayers} * kDim * kDim;
  static constexpr int64_t kRmsFfn = kWo + int64_t{kLayers} * kDim * kDim;
  static constexpr int64_t kW1 = kRmsFfn + kLayers * kDim;
  static constexpr int64_t kW2 = kW1 + int64_t{kLayers} * kHidden * kDim;
  static constexpr int64_t kW3 = kW2 + int64_t{kLayers} * kHidden * kDim;
  static constexpr int64_t kRmsFinal = kW3 + int64_t{kLayers} * kHidden * kDim;

  // Element (row, col) of layer l's [rows, cols] matrix in the array at `base`.
  float At(int64_t base, int l, int64_t rows, int64_t cols, int64_t row, int64_t col) const {
    return f[base + (l * rows + row) * cols + col];
  }
  // HF-layout q/k row: rotate-half row (head, c * 24 + i) is llama2.c row (head, 2i + c).
  float QkHf(int64_t base, int l, int head, int hf_row, int col) const {
    const int half = kHeadDim / 2, c = hf_row / half, i = hf_row % half;
    return At(base, l, kDim, kDim, head * kHeadDim + 2 * i + c, col);
  }
};

class ConverterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    raw_ = new RawBin(RawBin::Read());
    auto w = LoadLlama2c(kBin);
    CHECK_OK(w.status());
    weights_ = new ModelWeights(std::move(*w));
  }
  static void TearDownTestSuite() {
    delete raw_;
    delete weights_;
  }
  static RawBin* raw_;
  static ModelWeights* weights_;
};
RawBin* ConverterTest::raw_ = nullptr;
ModelWeights* ConverterTest::weights_ = nullptr;

TEST_F(ConverterTest, Config) {
  EXPECT_EQ(raw_->header, (std::vector<int32_t>{kDim, kHidden, kLayers, kHeads, kHeads, kVocab, kSeqLen}));
  const ModelConfig& c = weights_->config;
  EXPECT_EQ(c.hidden_size, kDim);
  EXPECT_EQ(c.intermediate_size, kHidden);
  EXPECT_EQ(c.num_hidden_layers, kLayers);
  EXPECT_EQ(c.num_attention_heads, kHeads);
  EXPECT_EQ(c.num_key_value_heads, kHeads);
  EXPECT_EQ(c.vocab_size, kVocab);
  EXPECT_EQ(c.max_position_embeddings, kSeqLen);
  EXPECT_TRUE(c.tie_word_embeddings);  // vocab_size > 0 in the header: shared classifier
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_TRUE(weights_->lm_head.empty());
}

TEST_F(ConverterTest, EveryTensorMatchesTheRawFile) {
  const RawBin& r = *raw_;
  const ModelWeights& w = *weights_;
  EXPECT_TRUE(std::equal(w.embed_tokens.begin(), w.embed_tokens.end(), r.f.begin() + RawBin::kEmb));
  EXPECT_TRUE(std::equal(w.final_norm.begin(), w.final_norm.end(), r.f.begin() + RawBin::kRmsFinal));
  for (int l = 0; l < kLayers; ++l) {
    const LayerWeights& lw = w.layers[l];
    for (int j = 0; j < kDim; ++j) {
      ASSERT_EQ(lw.attn_norm[j], r.f[RawBin::kRmsAtt + l * kDim + j]);
      ASSERT_EQ(lw.ffn_norm[j], r.f[RawBin::kRmsFfn + l * kDim + j]);
    }
    for (int head = 0; head < kHeads; ++head) {
      for (int row = 0; row < kHeadDim; ++row) {
        for (int col = 0; col < kDim; ++col) {
          const int64_t i = (int64_t{head} * kHeadDim + row) * kDim + col;
          ASSERT_EQ(lw.wq[i], r.QkHf(RawBin::kWq, l, head, row, col)) << l << " " << head << " " << row;
          ASSERT_EQ(lw.wk[i], r.QkHf(RawBin::kWk, l, head, row, col)) << l << " " << head << " " << row;
          ASSERT_EQ(lw.wv[i], r.At(RawBin::kWv, l, kDim, kDim, head * kHeadDim + row, col));  // not permuted
          ASSERT_EQ(lw.wo[i], r.At(RawBin::kWo, l, kDim, kDim, head * kHeadDim + row, col));
        }
      }
    }
    for (int row = 0; row < kHidden; ++row) {
      for (int col = 0; col < kDim; ++col) {
        ASSERT_EQ(lw.w_gate[row * kDim + col], r.At(RawBin::kW1, l, kHidden, kDim, row, col));
        ASSERT_EQ(lw.w_up[row * kDim + col], r.At(RawBin::kW3, l, kHidden, kDim, row, col));
        ASSERT_EQ(lw.w_down[col * kHidden + row], r.At(RawBin::kW2, l, kDim, kHidden, col, row));
      }
    }
  }
}

nlohmann::json ReadGolden() {
  std::ifstream in(kGolden);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  CHECK_OK(j.is_discarded() ? absl::NotFoundError(kGolden) : absl::OkStatus());
  return j;
}

// rows: [head_dim][cols] from the golden file; m: [n_heads * head_dim, kDim]. Exact unless tol > 0.
void ExpectHeadRows(const nlohmann::json& rows, const std::vector<float>& m, int head, double tol,
                    const std::string& what) {
  ASSERT_EQ(rows.size(), static_cast<size_t>(kHeadDim));
  for (int row = 0; row < kHeadDim; ++row) {
    for (size_t col = 0; col < rows[row].size(); ++col) {
      const float got = m[(int64_t{head} * kHeadDim + row) * kDim + col];
      const double want = rows[row][col].get<double>();
      if (tol == 0) {
        ASSERT_EQ(got, static_cast<float>(want)) << what << " row " << row << " col " << col;
      } else {
        ASSERT_NEAR(got, want, tol) << what << " row " << row << " col " << col;
      }
    }
  }
}

TEST_F(ConverterTest, QkRowsMatchNumpyHfPermutation) {
  const nlohmann::json g = ReadGolden();
  ASSERT_EQ(g["head_dim"].get<int>(), kHeadDim);
  ASSERT_FALSE(g["q_proj"].empty());
  for (const auto& e : g["q_proj"]) {
    ExpectHeadRows(e["rows"], weights_->layers[e["layer"].get<int>()].wq, e["head"].get<int>(), 0, "q_proj");
  }
  for (const auto& e : g["k_proj"]) {
    ExpectHeadRows(e["rows"], weights_->layers[e["layer"].get<int>()].wk, e["head"].get<int>(), 0, "k_proj");
  }
}

class GqaTest : public ConverterTest, public ::testing::WithParamInterface<int> {};

TEST_P(GqaTest, KvHeadsAreGroupMeansOfTheOriginals) {
  const int groups = GetParam(), per_group = kHeads / groups;
  ModelWeights w = *weights_;
  ASSERT_TRUE(MeanPoolKvHeads(groups, &w).ok());
  EXPECT_EQ(w.config.num_key_value_heads, groups);
  EXPECT_TRUE(w.config.Validate().ok());
  const RawBin& r = *raw_;
  // Means of float32 values computed in double here; the converter sums in float32: the difference is a few ulps
  // of values below 1, so 1e-6 absolute is ample and still far below the weights' scale (~1e-2).
  for (int l = 0; l < kLayers; ++l) {
    ASSERT_EQ(w.layers[l].wk.size(), static_cast<size_t>(groups) * kHeadDim * kDim);
    ASSERT_EQ(w.layers[l].wv.size(), static_cast<size_t>(groups) * kHeadDim * kDim);
    EXPECT_EQ(w.layers[l].wq, weights_->layers[l].wq);  // queries untouched
    for (int g = 0; g < groups; ++g) {
      for (int row = 0; row < kHeadDim; ++row) {
        for (int col = 0; col < kDim; ++col) {
          double k = 0, v = 0;
          for (int h = g * per_group; h < (g + 1) * per_group; ++h) {
            k += r.QkHf(RawBin::kWk, l, h, row, col);
            v += r.At(RawBin::kWv, l, kDim, kDim, h * kHeadDim + row, col);
          }
          const int64_t i = (int64_t{g} * kHeadDim + row) * kDim + col;
          ASSERT_NEAR(w.layers[l].wk[i], k / per_group, 1e-6) << l << " " << g << " " << row << " " << col;
          ASSERT_NEAR(w.layers[l].wv[i], v / per_group, 1e-6) << l << " " << g << " " << row << " " << col;
        }
      }
    }
  }
  // And against numpy's group means.
  int checked = 0;
  const nlohmann::json golden = ReadGolden();
  for (const auto& e : golden["gqa"]) {
    if (e["kv_heads"].get<int>() != groups) continue;
    const int l = e["layer"].get<int>(), g = e["group"].get<int>();
    ExpectHeadRows(e["k_rows"], w.layers[l].wk, g, 1e-6, "gqa k");
    ExpectHeadRows(e["v_rows"], w.layers[l].wv, g, 1e-6, "gqa v");
    ++checked;
  }
  EXPECT_GT(checked, 0);
  // The saved GQA model says so in config.json and loads back.
  const std::string dir = ::testing::TempDir() + "/converter_gqa_" + std::to_string(groups);
  ASSERT_TRUE(SaveModel(w, dir).ok());
  auto loaded = LoadModelWeights(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.num_key_value_heads, groups);
  EXPECT_EQ(loaded->layers[3].wk, w.layers[3].wk);
  std::filesystem::remove_all(dir);
}

// End to end: the CPU backend on the converted GQA model continues the golden prompt greedily with numpy's tokens
// (float64 forward of the same pooled model). The golden file records the smallest top-1/top-2 logit gap of those
// steps (> 0.1), far above fp32 rounding (~1e-4), so equal tokens are the right expectation.
TEST_P(GqaTest, GreedyContinuationMatchesNumpy) {
  const int groups = GetParam();
  ModelWeights w = *weights_;
  ASSERT_TRUE(MeanPoolKvHeads(groups, &w).ok());
  const nlohmann::json golden = ReadGolden();
  const nlohmann::json* expected = nullptr;
  for (const auto& e : golden["gqa_greedy"]) {
    if (e["kv_heads"].get<int>() == groups) expected = &e;
  }
  ASSERT_NE(expected, nullptr);
  CpuBackendOptions options;
  options.num_threads = 2;
  options.num_blocks = 16;
  auto backend = CpuBackend::Create(std::move(w), options);
  ASSERT_TRUE(backend.ok()) << backend.status();
  GenerateOptions gen;
  gen.params.temperature = 0.0f;
  gen.max_new_tokens = static_cast<int>((*expected)["ids"].size());
  auto result = SimpleGenerate(backend->get(), golden["forward"]["tokens"].get<std::vector<int32_t>>(), gen);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->tokens, (*expected)["ids"].get<std::vector<int32_t>>()) << (*expected)["text"];
}

INSTANTIATE_TEST_SUITE_P(Groups, GqaTest, ::testing::Values(2, 3));

TEST_F(ConverterTest, KvHeadsMustDivide) {
  for (int bad : {4, 5, 0, -2, 12}) {
    ModelWeights w = *weights_;
    absl::Status s = MeanPoolKvHeads(bad, &w);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr(std::to_string(bad) + " does not divide num_key_value_heads 6")) << bad;
  }
  ModelWeights w = *weights_;
  ASSERT_TRUE(MeanPoolKvHeads(6, &w).ok());  // identity
  EXPECT_EQ(w.layers[0].wk, weights_->layers[0].wk);
}

TEST_F(ConverterTest, FetchedModelDirMatchesConversion) {
  const std::string dir = LLAMA_SOURCE_DIR "/models/stories15M";
  if (!std::filesystem::exists(dir + "/model.safetensors")) GTEST_SKIP() << dir << " not set up";
  auto loaded = LoadModelWeights(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->config.num_key_value_heads, kHeads);
  EXPECT_EQ(loaded->embed_tokens, weights_->embed_tokens);
  for (int l = 0; l < kLayers; ++l) {
    EXPECT_EQ(loaded->layers[l].wq, weights_->layers[l].wq);
    EXPECT_EQ(loaded->layers[l].wk, weights_->layers[l].wk);
    EXPECT_EQ(loaded->layers[l].w_down, weights_->layers[l].w_down);
  }
}

TEST(Llama2cErrorsTest, TruncatedAndBogusFiles) {
  const std::string dir = ::testing::TempDir();
  {
    // The real header with only part of the weights.
    std::ifstream in(kBin, std::ios::binary);
    std::string head(1 << 16, '\0');
    in.read(head.data(), head.size());
    std::ofstream(dir + "/trunc.bin", std::ios::binary) << head;
  }
  EXPECT_THAT(LoadLlama2c(dir + "/trunc.bin").status().message(), HasSubstr("bytes but its header"));
  const int32_t bogus[7] = {288, 768, 6, 7, 6, 32000, 256};  // 7 heads do not divide 288
  std::ofstream(dir + "/bogus.bin", std::ios::binary).write(reinterpret_cast<const char*>(bogus), sizeof(bogus));
  EXPECT_THAT(LoadLlama2c(dir + "/bogus.bin").status().message(), HasSubstr("implausible llama2.c header"));
  const int32_t huge[7] = {1 << 30, 1 << 30, 1 << 30, 1 << 4, 1 << 4, -(1 << 30), 1 << 30};
  std::ofstream(dir + "/huge.bin", std::ios::binary).write(reinterpret_cast<const char*>(huge), sizeof(huge));
  EXPECT_THAT(LoadLlama2c(dir + "/huge.bin").status().message(), HasSubstr("bytes but its header"));
  EXPECT_EQ(LoadLlama2c(dir + "/nope.bin").status().code(), absl::StatusCode::kNotFound);
}

TEST(PermuteTest, SmallExample) {
  // One head of head_dim 4, one column: llama2.c rows [a0 b0 a1 b1] (pairs (a_i, b_i)) -> HF [a0 a1 b0 b1].
  EXPECT_EQ(PermuteInterleavedToRotateHalf({10, 11, 20, 21}, 1, 4, 1), (std::vector<float>{10, 20, 11, 21}));
}

}  // namespace
}  // namespace llama
