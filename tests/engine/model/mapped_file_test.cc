// MappedFile and the file-backed weight sources drop a tensor's pages from the process once it has been read
// (Release → madvise(MADV_DONTNEED)): the process's resident file pages (RssFile in /proc/self/status, which the
// kernel counts exactly) fall by the tensor's size, and the bytes still read back the same.
#include "engine/model/mapped_file.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/model/checkpoint.h"
#include "engine/model/gguf_source.h"
#include "convert/gguf_writer.h"
#include "engine/model/weights.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

// Resident file-backed memory of this process, in bytes.
int64_t RssFileBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssFile:", 0) == 0) return std::stoll(line.substr(8)) * 1024;
  }
  ADD_FAILURE() << "no RssFile in /proc/self/status";
  return 0;
}

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(MappedFileTest, ReleasePagesDropsThemAndKeepsTheBytes) {
  const std::string path = ::testing::TempDir() + "/mapped_file_test.bin";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    std::vector<char> chunk(kMiB);
    for (int i = 0; i < 32; ++i) {
      for (size_t j = 0; j < chunk.size(); ++j) chunk[j] = static_cast<char>(i * 31 + j);
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  auto file = MappedFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->size(), static_cast<size_t>(32 * kMiB));
  const int64_t before = RssFileBytes();
  uint64_t sum = 0;
  for (size_t i = 0; i < file->size(); i += 4096) sum += file->data()[i];
  const int64_t touched = RssFileBytes();
  EXPECT_GE(touched - before, 30 * kMiB);
  file->ReleasePages(0, file->size());
  EXPECT_LE(RssFileBytes(), touched - 30 * kMiB);
  uint64_t again = 0;
  for (size_t i = 0; i < file->size(); i += 4096) again += file->data()[i];
  EXPECT_EQ(again, sum);
}

TEST(MappedFileTest, OpenErrors) {
  EXPECT_EQ(MappedFile::Open(::testing::TempDir() + "/mapped_file_test_nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(MappedFile::Open(::testing::TempDir()).status().code(), absl::StatusCode::kInvalidArgument);
}

// A model whose embedding is 32 MiB of fp32 (vocab 8192 × dim 1024).
ModelWeights BigEmbeddingModel() {
  ModelConfig c;
  c.hidden_size = 1024;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 8;
  c.vocab_size = 8192;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = true;
  return MakeRandomWeights(c, 1);
}

// Reads the whole embedding through `source`, then releases it: the file pages come and go.
void ExpectReleaseDropsTheEmbedding(const WeightSource& source) {
  auto info = source.Info("model.embed_tokens.weight");
  ASSERT_TRUE(info.ok());
  std::vector<float> rows(info->num_elements());
  const int64_t before = RssFileBytes();
  ASSERT_TRUE(source.ReadRows("model.embed_tokens.weight", 0, info->rows(), rows.data()).ok());
  const int64_t read = RssFileBytes();
  EXPECT_GE(read - before, 30 * kMiB);
  source.Release("model.embed_tokens.weight");
  EXPECT_LE(RssFileBytes(), read - 30 * kMiB);
}

TEST(MappedFileTest, SafetensorsAndGgufSourcesReleaseConsumedTensors) {
  const ModelWeights w = BigEmbeddingModel();
  const std::string dir = ::testing::TempDir() + "/mapped_file_test_model";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(SaveModel(w, dir).ok());
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ExpectReleaseDropsTheEmbedding(**ckpt);

  SentencePieceVocab vocab;
  vocab.pieces = {{"<unk>", 0, PieceType::kUnknown}, {"<s>", 0, PieceType::kControl}, {"</s>", 0, PieceType::kControl}};
  vocab.pieces.resize(8192, {"x", 0, PieceType::kNormal});
  InMemoryWeightSource memory(&w);
  const std::string path = dir + "/model.gguf";
  ASSERT_TRUE(WriteLlamaGguf(path, memory, vocab, {}).ok());
  auto gguf = GgufWeightSource::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  ExpectReleaseDropsTheEmbedding(**gguf);
}

}  // namespace
}  // namespace llama
