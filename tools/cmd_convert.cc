// llama-chat convert, two conversions:
//   --from_llama2c FILE --tokenizer FILE --out DIR [--kv_heads G]: a llama2.c checkpoint -> a Hugging Face model
//     directory (config.json, model.safetensors, tokenizer.model), optionally made GQA by mean-pooling key/value
//     heads (--kv_heads G).
//   --model PATH --to_gguf FILE [--gguf_type T] [--tokenizer FILE]: any model (directory or GGUF) -> a llama GGUF
//     file with our writer (convert/gguf_writer.h), matrices in f32, f16, bf16, q8_0 or q4_0, the vocab from
//     --tokenizer, else the directory's tokenizer.model, else the GGUF's own.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "convert/gguf_writer.h"
#include "convert/llama2c.h"
#include "engine/model/gguf.h"
#include "engine/model/kv_head_pooling.h"
#include "engine/model/model_source.h"
#include "engine/model/weights.h"
#include "engine/text/gguf_vocab.h"
#include "engine/text/sentencepiece_vocab.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

struct ConvertArgs {
  std::string from_llama2c;
  std::string tokenizer;
  std::string out;
  int kv_heads = 0;  // only with --kv_heads
  std::string model;
  std::string to_gguf;
  std::string gguf_type = "f32";
};

absl::Status FromLlama2c(const ConvertArgs& args, bool pool_kv_heads) {
  if (args.from_llama2c.empty() || args.tokenizer.empty() || args.out.empty()) {
    return absl::InvalidArgumentError("--from_llama2c needs --tokenizer and --out");
  }
  if (!std::filesystem::is_regular_file(args.tokenizer)) {
    return absl::NotFoundError(absl::StrCat("--tokenizer ", args.tokenizer, ": no such file"));
  }
  ASSIGN_OR_RETURN(ModelWeights weights, LoadLlama2c(args.from_llama2c));
  if (pool_kv_heads) {
    if (absl::Status s = MeanPoolKvHeads(args.kv_heads, &weights); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", s.message()));
    }
  }
  RETURN_IF_ERROR(SaveModel(weights, args.out));
  std::error_code ec;
  std::filesystem::copy_file(args.tokenizer, args.out + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copying ", args.tokenizer, ": ", ec.message()));
  const ModelConfig& c = weights.config;
  std::printf("converted %s -> %s: %d layers, dim %d, %d heads, %d kv heads, vocab %d, context %d\n",
              args.from_llama2c.c_str(), args.out.c_str(), c.num_hidden_layers, c.hidden_size,
              c.num_attention_heads, c.num_key_value_heads, c.vocab_size, c.max_position_embeddings);
  return absl::OkStatus();
}

absl::StatusOr<SentencePieceVocab> VocabFromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream bytes;
  bytes << in.rdbuf();
  absl::StatusOr<SentencePieceVocab> vocab = ParseModelProto(bytes.str());
  if (!vocab.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", vocab.status().message()));
  if (vocab->model_type != 2) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a SentencePiece model of type ", vocab->model_type,
                                                   "; GGUF's llama tokenizer is BPE (type 2)"));
  }
  return vocab;
}

// The vocab to embed: --tokenizer, else the model directory's tokenizer.model, else the GGUF's own vocab.
absl::StatusOr<SentencePieceVocab> ModelVocab(const ConvertArgs& args) {
  if (!args.tokenizer.empty()) return VocabFromFile(args.tokenizer);
  if (!IsModelFile(args.model)) return VocabFromFile(args.model + "/tokenizer.model");
  ASSIGN_OR_RETURN(GgufFile file, GgufFile::Open(args.model));
  return GgufSentencePieceVocab(file);
}

absl::Status ToGguf(const ConvertArgs& args) {
  if (args.model.empty()) return absl::InvalidArgumentError("--to_gguf needs --model");
  LlamaGgufOptions options;
  ASSIGN_OR_RETURN(options.matrix_type, ParseGgufMatrixType(args.gguf_type));
  options.name = std::filesystem::path(args.model).filename().string();
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenWeightSource(args.model));
  ASSIGN_OR_RETURN(SentencePieceVocab vocab, ModelVocab(args));
  RETURN_IF_ERROR(WriteLlamaGguf(args.to_gguf, *source, vocab, options));
  const ModelConfig& c = source->config();
  std::printf("converted %s -> %s (%s matrices): %d layers, dim %d, %d heads, %d kv heads, vocab %d, context %d, "
              "%lld bytes\n",
              args.model.c_str(), args.to_gguf.c_str(), args.gguf_type.c_str(), c.num_hidden_layers, c.hidden_size,
              c.num_attention_heads, c.num_key_value_heads, c.vocab_size, c.max_position_embeddings,
              static_cast<long long>(std::filesystem::file_size(args.to_gguf)));
  return absl::OkStatus();
}

int RunConvert(int argc, char** argv) {
  ConvertArgs args;
  FlagSet flags("convert",
                "--from_llama2c FILE --tokenizer FILE --out DIR [--kv_heads G] | "
                "--model PATH --to_gguf FILE [--gguf_type T] [--tokenizer FILE]",
                "Converts a llama2.c checkpoint to the Hugging Face layout, or any model to a llama GGUF file.");
  flags.Add("from_llama2c", &args.from_llama2c, "llama2.c .bin checkpoint (legacy version 0)");
  flags.Add("tokenizer", &args.tokenizer, "SentencePiece tokenizer.model (copied beside it / its vocab embedded)");
  flags.Add("out", &args.out, "output model directory (with --from_llama2c)");
  flags.AddOptional("kv_heads", &args.kv_heads, "make a GQA model with G key/value heads (mean-pooled); unset: keep all");
  flags.Add("model", &args.model, "model directory or GGUF file to write as GGUF (with --to_gguf)");
  flags.Add("to_gguf", &args.to_gguf, "output GGUF file");
  flags.Add("gguf_type", &args.gguf_type, "GGUF matrix type: f32, f16, bf16, q8_0 or q4_0 (norms stay f32)");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (flags.Has("from_llama2c") == flags.Has("to_gguf")) {
    return UsageError("convert", absl::InvalidArgumentError("give exactly one of --from_llama2c and --to_gguf"));
  }
  const absl::Status s = flags.Has("to_gguf") ? ToGguf(args) : FromLlama2c(args, flags.Has("kv_heads"));
  if (!s.ok()) return Fail("convert", s);
  return 0;
}

}  // namespace

LLAMA_SUBCOMMAND(convert, "convert a llama2.c checkpoint to the Hugging Face layout, or a model to GGUF", RunConvert);

}  // namespace llama::cli
