// llama-chat convert: a llama2.c checkpoint -> a Hugging Face model directory (config.json, model.safetensors,
// tokenizer.model), optionally turned into a GQA model by mean-pooling key/value heads (--kv_heads G).
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "convert/llama2c.h"
#include "engine/model/kv_head_pooling.h"
#include "engine/model/weights.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

struct ConvertArgs {
  std::string from_llama2c;
  std::string tokenizer;
  std::string out;
  int kv_heads = 0;  // only with --kv_heads
};

absl::Status Convert(const ConvertArgs& args, bool pool_kv_heads) {
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

int RunConvert(int argc, char** argv) {
  ConvertArgs args;
  FlagSet flags("convert", "--from_llama2c FILE --tokenizer FILE --out DIR [--kv_heads G]",
                "Converts a llama2.c checkpoint to the Hugging Face layout.");
  flags.AddRequired("from_llama2c", &args.from_llama2c, "llama2.c .bin checkpoint (legacy version 0)");
  flags.AddRequired("tokenizer", &args.tokenizer, "SentencePiece tokenizer.model to copy beside it");
  flags.AddRequired("out", &args.out, "output model directory");
  flags.AddOptional("kv_heads", &args.kv_heads, "make a GQA model with G key/value heads (mean-pooled); unset: keep all");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (absl::Status s = Convert(args, flags.Has("kv_heads")); !s.ok()) return Fail("convert", s);
  return 0;
}

}  // namespace

LLAMA_SUBCOMMAND(convert, "convert a llama2.c checkpoint to the Hugging Face layout", RunConvert);

}  // namespace llama::cli
