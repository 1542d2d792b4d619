// llama-chat convert: a llama2.c checkpoint -> a Hugging Face model directory (config.json, model.safetensors,
// tokenizer.model), optionally turned into a GQA model by mean-pooling key/value heads (--kv_heads G).
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "convert/llama2c.h"
#include "engine/model/kv_head_pooling.h"
#include "engine/model/weights.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

absl::Status Convert(const CliFlags& flags) {
  auto from = flags.RequireString("from_llama2c");
  if (!from.ok()) return from.status();
  auto tokenizer = flags.RequireString("tokenizer");
  if (!tokenizer.ok()) return tokenizer.status();
  auto out = flags.RequireString("out");
  if (!out.ok()) return out.status();
  auto kv_heads = flags.GetInt("kv_heads", 0);
  if (!kv_heads.ok()) return kv_heads.status();
  if (!std::filesystem::is_regular_file(*tokenizer)) {
    return absl::NotFoundError(absl::StrCat("--tokenizer ", *tokenizer, ": no such file"));
  }
  auto weights = LoadLlama2c(*from);
  if (!weights.ok()) return weights.status();
  if (flags.Has("kv_heads")) {
    if (absl::Status s = MeanPoolKvHeads(*kv_heads, &*weights); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--", s.message()));
    }
  }
  if (absl::Status s = SaveModel(*weights, *out); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::copy_file(*tokenizer, *out + "/tokenizer.model",
                             std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copying ", *tokenizer, ": ", ec.message()));
  const ModelConfig& c = weights->config;
  std::printf("converted %s -> %s: %d layers, dim %d, %d heads, %d kv heads, vocab %d, context %d\n",
              from->c_str(), out->c_str(), c.num_hidden_layers, c.hidden_size, c.num_attention_heads,
              c.num_key_value_heads, c.vocab_size, c.max_position_embeddings);
  return absl::OkStatus();
}

int RunConvert(int argc, char** argv) {
  auto flags = CliFlags::Parse(argc, argv, {"from_llama2c", "tokenizer", "out", "kv_heads"});
  if (!flags.ok()) return Fail("convert", flags.status());
  if (!flags->positional().empty()) {
    return Fail("convert", absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags->positional()[0],
                                                                   "'")));
  }
  if (absl::Status s = Convert(*flags); !s.ok()) return Fail("convert", s);
  return 0;
}

}  // namespace

LLAMA_SUBCOMMAND(convert, "convert a llama2.c checkpoint to the Hugging Face layout (--from_llama2c --tokenizer --out [--kv_heads G])",
                 RunConvert);

}  // namespace llama::cli
