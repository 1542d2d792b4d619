// llama-chat generate: one sequence on the CPU backend, streamed to stdout.
//   --prompt TEXT     BOS + the text's ids; prints the prompt followed by the continuation (as llama2.c's run.c)
//   --dialog FILE     a JSON dialog built into the LLaMA 2-Chat prompt; prints only the reply
//   --prompts FILE    many prompts through the scheduler (tools/generate_batch.h)
// Statistics (prompt tokens, generated tokens, decode tokens/s excluding the prefill) go to stderr.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/simple_generate.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/dialog_json.h"
#include "engine/text/tokenizer.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"
#include "tools/generate_batch.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<GenerateOptions> ParseGenerateOptions(const CliFlags& flags) {
  GenerateOptions gen;
  ASSIGN_OR_RETURN(gen.max_new_tokens, flags.GetInt("max_tokens", 256));
  ASSIGN_OR_RETURN(const double temperature, flags.GetDouble("temperature", 1.0));
  ASSIGN_OR_RETURN(const double top_p, flags.GetDouble("top_p", 0.9));
  ASSIGN_OR_RETURN(gen.params.top_k, flags.GetInt("top_k", 0));
  ASSIGN_OR_RETURN(const double penalty, flags.GetDouble("repetition_penalty", 1.0));
  ASSIGN_OR_RETURN(const int seed, flags.GetInt("seed", 0));
  gen.params.temperature = static_cast<float>(temperature);
  gen.params.top_p = static_cast<float>(top_p);
  gen.params.repetition_penalty = static_cast<float>(penalty);
  gen.seed = static_cast<uint64_t>(seed);
  if (gen.max_new_tokens < 0) return absl::InvalidArgumentError("--max_tokens must be >= 0");
  RETURN_IF_ERROR(gen.params.Validate());
  return gen;
}

// The prompt ids; `echo` gets the ids whose text is printed before the continuation.
absl::StatusOr<std::vector<int32_t>> BuildPrompt(const CliFlags& flags, const Tokenizer& tokenizer, int max_ctx,
                                                 std::vector<int32_t>* echo) {
  if (flags.Has("prompt") == flags.Has("dialog")) {
    return absl::InvalidArgumentError("give exactly one of --prompt, --dialog or --prompts");
  }
  if (flags.Has("prompt")) {
    *echo = tokenizer.Encode(flags.GetString("prompt"));
    std::vector<int32_t> ids = {tokenizer.bos_id()};
    ids.insert(ids.end(), echo->begin(), echo->end());
    return ids;
  }
  ASSIGN_OR_RETURN(const std::string json, ReadTextFile(flags.GetString("dialog")));
  ASSIGN_OR_RETURN(const std::vector<Message> dialog, ParseDialogJson(json));
  ASSIGN_OR_RETURN(ChatPrompt prompt, BuildChatPrompt(tokenizer, dialog, max_ctx - 1));
  if (prompt.dropped_turns > 0) std::fprintf(stderr, "dropped %d oldest turns to fit\n", prompt.dropped_turns);
  return prompt.token_ids;
}

absl::Status Generate(const CliFlags& flags) {
  ASSIGN_OR_RETURN(const std::string model_dir, flags.RequireString("model_dir"));
  ASSIGN_OR_RETURN(GenerateOptions gen, ParseGenerateOptions(flags));
  ASSIGN_OR_RETURN(const int threads, flags.GetInt("threads", 0));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(model_dir + "/tokenizer.model"));
  ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(model_dir));
  const int max_ctx = weights.config.max_position_embeddings;
  CpuBackendOptions options;
  options.num_threads = threads;
  options.num_blocks = (max_ctx + options.block_size - 1) / options.block_size;  // one sequence
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(flags.GetString("backend", "cpu"),
                                                                    flags.GetString("dtype", "bf16"),
                                                                    std::move(weights), options));

  std::vector<int32_t> echo;
  ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, BuildPrompt(flags, *tokenizer, max_ctx, &echo));
  gen.stop_token_ids = {tokenizer->eos_id(), tokenizer->bos_id()};
  IncrementalDetokenizer detok(tokenizer.get());
  for (int32_t id : echo) std::fputs(detok.Push(id).c_str(), stdout);
  std::fflush(stdout);
  ASSIGN_OR_RETURN(const GenerateResult result,
                   SimpleGenerate(backend.get(), prompt, gen, [&](int32_t id) {
                     std::fputs(detok.Push(id).c_str(), stdout);
                     std::fflush(stdout);
                   }));
  std::fputs(detok.Flush().c_str(), stdout);
  std::fputs("\n", stdout);
  std::fflush(stdout);
  std::fprintf(stderr, "prompt tokens: %zu\ngenerated tokens: %zu\ndecode: %.1f tokens/s (%d decode steps, %.1f ms; "
               "prefill %.1f ms, %d threads)\n",
               prompt.size(), result.tokens.size(), result.decode_tokens_per_second(), result.decode_steps,
               result.decode_seconds * 1e3, result.prefill_seconds * 1e3, BackendThreads(*backend));
  return absl::OkStatus();
}

bool HasPromptsFlag(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--prompts") || !std::strncmp(argv[i], "--prompts=", 10)) return true;
  }
  return false;
}

int RunGenerate(int argc, char** argv) {
  if (HasPromptsFlag(argc, argv)) return RunGenerateBatch(argc, argv);
  absl::StatusOr<CliFlags> flags =
      CliFlags::Parse(argc, argv, {"model_dir", "prompt", "dialog", "max_tokens", "temperature", "top_p", "top_k",
                                   "repetition_penalty", "seed", "threads", "backend", "dtype"});
  if (!flags.ok()) return Fail("generate", flags.status());
  if (!flags->positional().empty()) {
    return Fail("generate", absl::InvalidArgumentError(absl::StrCat("unexpected argument '",
                                                                    flags->positional()[0], "'")));
  }
  absl::Status status = Generate(*flags);
  return status.ok() ? 0 : Fail("generate", status);
}

}  // namespace

LLAMA_SUBCOMMAND(generate, "generate text from a prompt or a dialog with the CPU backend", RunGenerate);

}  // namespace llama::cli
