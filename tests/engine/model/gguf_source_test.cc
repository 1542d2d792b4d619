// GgufWeightSource against the model it was written from (our writer, convert/gguf_writer.h, in llama.cpp's
// conventions): F32 exactly; F16/BF16 exactly the compiler's (_Float16) or the round-to-nearest-even rounding of
// each weight; Q8_0/Q4_0 within the quantization bounds, tensor by tensor; the CPU backend's logits from the
// GGUF equal to those of the safetensors model (F32) or of the reference-dequantized weights (Q8_0), bit for bit;
// stories15M from a GGUF greedily reproducing llama2.c's text; and one test per rule of the llama layout.
#include "engine/model/gguf_source.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "convert/gguf_writer.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/forward_batch.h"
#include "engine/model/checkpoint.h"
#include "engine/model/gguf_llama.h"
#include "engine/model/weights.h"
#include "engine/simple_generate.h"
#include "engine/text/model_tokenizer.h"
#include "engine/text/sentencepiece_vocab.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/compiler_half.h"
#include "tests/support/tiny_models.h"

namespace llama {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) { return ::testing::TempDir() + "/gguf_source_test_" + name; }

// A vocab of `n` pieces that SentencePiece accepts: <unk>, <s>, </s>, then normal pieces.
SentencePieceVocab SmallVocab(int n) {
  SentencePieceVocab v;
  v.byte_fallback = false;
  v.pieces = {{"<unk>", 0, PieceType::kUnknown}, {"<s>", 0, PieceType::kControl}, {"</s>", 0, PieceType::kControl}};
  for (int i = 3; i < n; ++i) v.pieces.push_back({"\xE2\x96\x81p" + std::to_string(i), -static_cast<float>(i), PieceType::kNormal});
  return v;
}

ModelConfig GqaConfig(bool tied, float rope_scaling = 1.0f) {
  ModelConfig c = testing::TinyConfig();  // 2 layers, dim 32, 4 heads, 2 KV heads, ffn 64, vocab 64
  c.tie_word_embeddings = tied;
  c.rope_scaling_factor = rope_scaling;
  c.rope_theta = 5000.0f;
  c.rms_norm_eps = 1e-6f;
  return c;
}

std::string WriteGguf(const std::string& name, const ModelWeights& w, GgmlType type, uint32_t version = 3,
                      uint32_t alignment = 32) {
  InMemoryWeightSource source(&w);
  const std::string path = TempPath(name + ".gguf");
  LlamaGgufOptions options;
  options.matrix_type = type;
  options.version = version;
  options.alignment = alignment;
  const absl::Status s = WriteLlamaGguf(path, source, SmallVocab(w.config.vocab_size), options);
  EXPECT_TRUE(s.ok()) << s;
  return path;
}

ModelWeights Materialize(const std::string& path) {
  auto source = GgufWeightSource::Open(path);
  EXPECT_TRUE(source.ok()) << source.status();
  auto w = MaterializeWeights(**source);
  EXPECT_TRUE(w.ok()) << w.status();
  return std::move(*w);
}

float CompilerHalfRound(float x) { return testing::CompilerHalfToFloat(testing::CompilerHalfBits(x)); }

float Bf16Round(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b = (b + 0x7fffu + ((b >> 16) & 1)) & 0xffff0000u;
  float y;
  std::memcpy(&y, &b, 4);
  return y;
}

// Calls check(name, original, read) for every tensor of the config.
void ForEachTensor(const ModelWeights& a, const ModelWeights& b,
                   const std::function<void(const std::string&, const std::vector<float>&, const std::vector<float>&)>& check) {
  InMemoryWeightSource sa(&a), sb(&b);
  for (const TensorSpec& spec : ModelTensorSpecs(a.config)) {
    auto ia = sa.Info(spec.name);
    ASSERT_TRUE(ia.ok()) << spec.name;
    std::vector<float> va(ia->num_elements()), vb(ia->num_elements());
    ASSERT_TRUE(sa.ReadRows(spec.name, 0, ia->rows(), va.data()).ok());
    ASSERT_TRUE(sb.ReadRows(spec.name, 0, ia->rows(), vb.data()).ok()) << spec.name;
    check(spec.name, va, vb);
  }
}

TEST(GgufSourceTest, F32RoundTripIsExactForGqaTiedAndScaledModels) {
  for (bool tied : {false, true}) {
    const ModelWeights w = MakeRandomWeights(GqaConfig(tied, tied ? 2.0f : 1.0f), 3);
    for (uint32_t version : {2u, 3u}) {
      const std::string path = WriteGguf("f32", w, GgmlType::kF32, version, version == 2 ? 64 : 32);
      auto source = GgufWeightSource::Open(path);
      ASSERT_TRUE(source.ok()) << source.status();
      const ModelConfig& c = (*source)->config();
      EXPECT_EQ(ModelConfigToJson(c), ModelConfigToJson(w.config));
      EXPECT_EQ(c.tie_word_embeddings, tied);
      const ModelWeights read = Materialize(path);
      ForEachTensor(w, read, [](const std::string& name, const auto& a, const auto& b) { EXPECT_EQ(a, b) << name; });
      // A range of q rows from the middle of a head reads the same rows as the whole tensor.
      const std::string q = LayerTensorName(1, "self_attn.q_proj.weight");
      std::vector<float> rows(5 * c.hidden_size);
      ASSERT_TRUE((*source)->ReadRows(q, 3, 8, rows.data()).ok());
      EXPECT_EQ(rows, std::vector<float>(w.layers[1].wq.begin() + 3 * c.hidden_size, w.layers[1].wq.begin() + 8 * c.hidden_size));
      EXPECT_EQ((*source)->Info(q)->stored, StoredDtype::kF32);
    }
  }
}

TEST(GgufSourceTest, HalfAndQuantizedTypesWithinTheirBounds) {
  const ModelWeights w = MakeRandomWeights(GqaConfig(false), 4, 0.5f);
  const ModelWeights f16 = Materialize(WriteGguf("f16", w, GgmlType::kF16));
  const ModelWeights bf16 = Materialize(WriteGguf("bf16", w, GgmlType::kBF16));
  const ModelWeights q8 = Materialize(WriteGguf("q8", w, GgmlType::kQ8_0));
  const ModelWeights q4 = Materialize(WriteGguf("q4", w, GgmlType::kQ4_0));
  auto is_norm = [](const std::string& name) { return name.find("norm") != std::string::npos; };
  ForEachTensor(w, f16, [&](const std::string& name, const auto& a, const auto& b) {
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], is_norm(name) ? a[i] : CompilerHalfRound(a[i])) << name << i;
  });
  ForEachTensor(w, bf16, [&](const std::string& name, const auto& a, const auto& b) {
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], is_norm(name) ? a[i] : Bf16Round(a[i])) << name << i;
  });
  // Per block of 32 along a row: Q8_0 |x − x'| ≤ d/2 + 127·|d − fp16(d)|, d = max|x|/127; Q4_0 ≤ d + 8·|d − fp16(d)|,
  // d = max|x|/8 (tests/convert/gguf_writer_test.cc derives both); fp16(d) is within 2^-11 d here.
  for (const auto& bound : {std::tuple{&q8, 1.0f / 127, 0.5f + 127 * 0x1p-11f},
                             std::tuple{&q4, 1.0f / 8, 1.0f + 8 * 0x1p-11f}}) {
    const ModelWeights* q = std::get<0>(bound);
    const float per_amax = std::get<1>(bound), steps = std::get<2>(bound);
    ForEachTensor(w, *q, [&](const std::string& name, const auto& a, const auto& b) {
      if (is_norm(name)) {  // norms stay F32
        EXPECT_EQ(a, b) << name;
        return;
      }
      for (size_t blk = 0; blk < a.size(); blk += 32) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(a[blk + i]));
        for (int i = 0; i < 32; ++i) {
          ASSERT_LE(std::fabs(a[blk + i] - b[blk + i]), amax * per_amax * steps * (1 + 1e-5f)) << name << " " << blk + i;
        }
      }
    });
  }
}

// Logits of every position of one sequence.
std::vector<float> AllLogits(ModelWeights weights, const std::vector<int32_t>& tokens) {
  CpuBackendOptions options;
  options.num_threads = 2;
  options.num_blocks = 8;
  options.block_size = 16;
  auto backend = CpuBackend::Create(std::move(weights), options);
  EXPECT_TRUE(backend.ok()) << backend.status();
  ForwardBatchBuilder batch(16);
  batch.AddSequence(tokens, 0, {0, 1});
  for (size_t i = 0; i < tokens.size(); ++i) {
    OutputRow row;
    row.sample = false;
    batch.AddOutputAt(static_cast<int>(i), row);
  }
  ForwardInput input = std::move(batch).Build();
  input.return_logits = true;
  ForwardOutput out;
  EXPECT_TRUE((*backend)->Forward(input, &out).ok());
  return out.logits;
}

TEST(GgufSourceTest, CpuLogitsFromGgufEqualTheSafetensorsModel) {
  const ModelWeights w = MakeRandomWeights(GqaConfig(false, 2.0f), 5, 0.2f);
  const std::string dir = TempPath("st_model");
  ASSERT_TRUE(SaveModel(w, dir).ok());
  const std::vector<int32_t> tokens = {1, 5, 9, 63, 2, 17, 17, 40, 33, 8, 0, 12, 60, 21, 7, 3, 44, 19, 26};
  auto from_dir = LoadModelWeights(dir);
  ASSERT_TRUE(from_dir.ok());
  auto from_gguf = LoadModelWeights(WriteGguf("logits_f32", w, GgmlType::kF32));
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status();
  const std::vector<float> expected = AllLogits(std::move(*from_dir), tokens);
  EXPECT_EQ(AllLogits(std::move(*from_gguf), tokens), expected);

  // Q8_0: the GGUF's logits are those of the original weights passed through the reference quantizer (the CPU
  // backend sees the same fp32 values), so naming, the q/k permutation of quantized rows and the dequantization
  // are all exact. The reference here: Q8_0 blocks along each HF row, d = fp16(max|x| / 127), x' = d · round(x / d).
  ModelWeights ref = w;
  for (auto* v : {&ref.embed_tokens, &ref.lm_head}) {
    for (size_t b = 0; b < v->size(); b += 32) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs((*v)[b + i]));
      const float d = amax / 127, id = d ? 1 / d : 0, dh = CompilerHalfRound(d);
      for (int i = 0; i < 32; ++i) (*v)[b + i] = dh * roundf((*v)[b + i] * id);
    }
  }
  for (auto& l : ref.layers) {
    for (auto* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      for (size_t b = 0; b < v->size(); b += 32) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs((*v)[b + i]));
        const float d = amax / 127, id = d ? 1 / d : 0, dh = CompilerHalfRound(d);
        for (int i = 0; i < 32; ++i) (*v)[b + i] = dh * roundf((*v)[b + i] * id);
      }
    }
  }
  auto q8 = LoadModelWeights(WriteGguf("logits_q8", w, GgmlType::kQ8_0));
  ASSERT_TRUE(q8.ok()) << q8.status();
  EXPECT_EQ(AllLogits(std::move(*q8), tokens), AllLogits(std::move(ref), tokens));
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// stories15M (a multi-head model, dims 288/768, tied embeddings) through a GGUF with its own vocab: the weights
// equal the safetensors model's exactly, and greedy decoding reproduces llama2.c's text.
TEST(GgufSourceTest, Stories15MFromGgufGreedyMatchesLlama2c) {
  const std::string model_dir = std::string(LLAMA_SOURCE_DIR) + "/models/stories15M";
  auto ckpt = Checkpoint::Open(model_dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto vocab = ParseModelProto(ReadFile(model_dir + "/tokenizer.model"));
  ASSERT_TRUE(vocab.ok());
  const std::string dir = TempPath("stories");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/stories15M-f32.gguf";
  ASSERT_TRUE(WriteLlamaGguf(path, **ckpt, *vocab, {}).ok());
  auto weights = LoadModelWeights(path);
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto reference = LoadModelWeights(model_dir);
  ASSERT_TRUE(reference.ok());
  ForEachTensor(*reference, *weights, [](const std::string& name, const auto& a, const auto& b) { EXPECT_EQ(a, b) << name; });
  auto tokenizer = LoadModelTokenizer(path);  // the GGUF's vocab: no tokenizer.model beside it
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  CpuBackendOptions options;
  options.num_blocks = 16;
  auto backend = CpuBackend::Create(std::move(*weights), options);
  ASSERT_TRUE(backend.ok());
  std::vector<int32_t> prompt = {(*tokenizer)->bos_id()};
  for (int32_t id : (*tokenizer)->Encode("Once upon a time")) prompt.push_back(id);
  GenerateOptions gen;
  gen.params.temperature = 0.0f;
  gen.max_new_tokens = 64 - static_cast<int>(prompt.size() - 1);
  gen.stop_token_ids = {(*tokenizer)->bos_id(), (*tokenizer)->eos_id()};
  auto result = SimpleGenerate(backend->get(), prompt, gen);
  ASSERT_TRUE(result.ok());
  std::vector<int32_t> all(prompt.begin() + 1, prompt.end());
  all.insert(all.end(), result->tokens.begin(), result->tokens.end());
  std::string expected = ReadFile(std::string(LLAMA_SHARED_DIR) + "/testdata/stories15M_greedy_onceuponatime_n64.txt");
  while (!expected.empty() && expected.back() == '\n') expected.pop_back();
  EXPECT_EQ((*tokenizer)->Decode(all), expected);
}

// Each rule of the llama layout: a file that breaks it is INVALID_ARGUMENT naming the key or tensor.
TEST(GgufSourceTest, LlamaLayoutRules) {
  const ModelWeights w = MakeRandomWeights(GqaConfig(false), 6);
  InMemoryWeightSource source(&w);
  struct Rule {
    std::function<void(GgufWriter*)> edit;
    std::string message;
  };
  std::vector<Rule> rules;
  for (const char* key : {"general.architecture", "llama.context_length", "llama.embedding_length", "llama.block_count",
                          "llama.feed_forward_length", "llama.attention.head_count",
                          "llama.attention.layer_norm_rms_epsilon"}) {
    rules.push_back({[key](GgufWriter* g) { g->Remove(key); }, absl::StrCat("missing required metadata key '", key, "'")});
  }
  rules.push_back({[](GgufWriter* g) { g->Set("general.architecture", GgufWriteValue::Str("gpt2")); },
                   "general.architecture is 'gpt2'; only llama models are supported"});
  rules.push_back({[](GgufWriter* g) { g->Set("llama.block_count", GgufWriteValue::Str("2")); },
                   "'llama.block_count' has type string, expected an integer"});
  // fuzz/gguf_fuzzer found this one: 10^8 layers made the loader allocate 3.5 GB of tensor specs before it
  // looked for the first missing tensor.
  rules.push_back({[](GgufWriter* g) { g->Set("llama.block_count", GgufWriteValue::U32(100000000)); },
                   "llama.block_count 100000000 needs at least 900000000 tensors (9 per layer), the file has 21"});
  rules.push_back({[](GgufWriter* g) { g->Set("llama.attention.head_count_kv", GgufWriteValue::U32(3)); },
                   "llama metadata: "});
  rules.push_back({[](GgufWriter* g) { g->Set("llama.rope.dimension_count", GgufWriteValue::U32(4)); },
                   "llama.rope.dimension_count 4 is not the head size 8"});
  rules.push_back({[](GgufWriter* g) { g->Set("llama.rope.scaling.type", GgufWriteValue::Str("yarn")); },
                   "llama.rope.scaling.type 'yarn' is not supported"});
  rules.push_back({[](GgufWriter* g) { g->RemoveTensor("blk.1.attn_k.weight"); },
                   "missing tensor 'blk.1.attn_k.weight' (model.layers.1.self_attn.k_proj.weight, shape [16, 32])"});
  rules.push_back({[](GgufWriter* g) { std::swap(g->FindTensor("blk.0.ffn_down.weight")->dims[0],
                                                 g->FindTensor("blk.0.ffn_down.weight")->dims[1]); },
                   "tensor 'blk.0.ffn_down.weight' has dims [32, 64] (shape [64, 32]), but the metadata implies "
                   "model.layers.0.mlp.down_proj.weight of shape [32, 64]"});
  rules.push_back({[](GgufWriter* g) { g->FindTensor("output_norm.weight")->dims = {32, 1}; },
                   "tensor 'output_norm.weight' has dims [32, 1] (shape [1, 32])"});
  rules.push_back({[](GgufWriter* g) {
                     GgufWriter::Tensor* t = g->FindTensor("blk.0.ffn_up.weight");
                     t->type = GgmlType::kQ6_K;
                     t->dims = {256, 8};  // the same element count, in whole Q6_K blocks
                     t->bytes = [] { return absl::StatusOr<std::string>(std::string(8 * 210, '\0')); };
                   },
                   "tensor 'blk.0.ffn_up.weight' has type Q6_K; readable types are F32, F16, BF16, Q8_0, Q4_0"});
  for (const Rule& rule : rules) {
    auto writer = LlamaGguf(source, SmallVocab(64), {});
    ASSERT_TRUE(writer.ok());
    rule.edit(&*writer);
    const std::string path = TempPath("rule.gguf");
    ASSERT_TRUE(writer->Write(path).ok()) << rule.message;
    const absl::Status s = GgufWeightSource::Open(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << rule.message;
    EXPECT_THAT(std::string(s.message()), HasSubstr(rule.message));
  }
}

TEST(GgufSourceTest, ReadRowsRangeAndUnknownNames) {
  const ModelWeights w = MakeRandomWeights(GqaConfig(true), 7);
  auto source = GgufWeightSource::Open(WriteGguf("ranges", w, GgmlType::kQ8_0));
  ASSERT_TRUE(source.ok());
  std::vector<float> row(32);
  EXPECT_EQ((*source)->ReadRows("model.norm.weight", 0, 2, row.data()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*source)->Info("lm_head.weight").status().code(), absl::StatusCode::kNotFound);  // tied
  EXPECT_EQ((*source)->Info(LayerTensorName(0, "mlp.up_proj.weight"))->stored, StoredDtype::kQ8_0);
  EXPECT_EQ((*source)->Info("model.norm.weight")->stored, StoredDtype::kF32);
}

}  // namespace
}  // namespace llama
