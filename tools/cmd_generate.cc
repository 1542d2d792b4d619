// llama-chat generate: one sequence on the CPU backend, streamed to stdout.
//   --prompt TEXT     BOS + the text's ids; prints the prompt followed by the continuation (as llama2.c's run.c)
//   --dialog FILE     a JSON dialog built into the LLaMA 2-Chat prompt; prints only the reply
//   --prompts FILE    many prompts through the scheduler (tools/generate_batch.h)
// Statistics (prompt tokens, generated tokens, decode tokens/s excluding the prefill) go to stderr.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/simple_generate.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/dialog_json.h"
#include "engine/text/model_tokenizer.h"
#include "engine/text/tokenizer.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"
#include "tools/generate_batch.h"
#include "tools/subcommands.h"
#include "tools/text_file.h"

namespace llama::cli {
namespace {

// Single-stream mode. Defaults: GenerateOptions' and SamplingParams', except top_p (llama2.c run.c's 0.9).
struct GenerateArgs {
  std::string model_path;
  std::string prompt;
  std::string dialog;
  GenerateOptions gen;
  CpuBackendOptions cpu;
  std::string backend = "cpu";
  std::string dtype = cuda::CudaBackendOptions{}.dtype;
  std::string kv_dtype = KvDtypeName(CpuBackendOptions{}.kv_dtype);  // --kv_dtype
  std::string weights_dtype = "f32";
  GenerateArgs() { gen.params.top_p = 0.9f; }
};

void AddFlags(FlagSet* flags, GenerateArgs* args) {
  AddModelFlag(flags, &args->model_path);
  flags->Add("prompt", &args->prompt, "BOS + the text's ids; prints the prompt and its continuation");
  flags->Add("dialog", &args->dialog, "a JSON dialog built into the LLaMA 2-Chat prompt; prints only the reply");
  flags->Add("max_tokens", &args->gen.max_new_tokens, "generated tokens at most (clamped to the context)");
  AddSamplingFlags(flags, &args->gen.params, &args->gen.seed);
  AddBackendFlags(flags, &args->backend, &args->dtype, &args->cpu.num_threads, &args->weights_dtype);
  AddKvDtypeFlag(flags, &args->kv_dtype);
}

// The prompt ids; `echo` gets the ids whose text is printed before the continuation.
absl::StatusOr<std::vector<int32_t>> BuildPrompt(const GenerateArgs& args, const FlagSet& flags,
                                                 const Tokenizer& tokenizer, int max_ctx, std::vector<int32_t>* echo) {
  if (flags.Has("prompt") == flags.Has("dialog")) {
    return absl::InvalidArgumentError("give exactly one of --prompt, --dialog or --prompts");
  }
  if (flags.Has("prompt")) {
    *echo = tokenizer.Encode(args.prompt);
    std::vector<int32_t> ids = {tokenizer.bos_id()};
    ids.insert(ids.end(), echo->begin(), echo->end());
    return ids;
  }
  ASSIGN_OR_RETURN(const std::string json, ReadTextFile("dialog", args.dialog));
  ASSIGN_OR_RETURN(const std::vector<Message> dialog, ParseDialogJson(json));
  ASSIGN_OR_RETURN(ChatPrompt prompt, BuildChatPrompt(tokenizer, dialog, max_ctx - 1));
  if (prompt.dropped_turns > 0) std::fprintf(stderr, "dropped %d oldest turns to fit\n", prompt.dropped_turns);
  return prompt.token_ids;
}

absl::Status Generate(GenerateArgs args, const FlagSet& flags) {
  if (args.gen.max_new_tokens < 0) return absl::InvalidArgumentError("--max_tokens must be >= 0");
  RETURN_IF_ERROR(args.gen.params.Validate());
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadModelTokenizer(args.model_path));
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenModel(args.model_path, ""));
  const int max_ctx = source->config().max_position_embeddings;
  args.cpu.num_blocks = (max_ctx + args.cpu.block_size - 1) / args.cpu.block_size;  // one sequence
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                   CreateBackend(args.backend, args.dtype, args.weights_dtype, *source, args.cpu, args.kv_dtype));
  source.reset();

  std::vector<int32_t> echo;
  ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, BuildPrompt(args, flags, *tokenizer, max_ctx, &echo));
  GenerateOptions& gen = args.gen;
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

constexpr char kSynopsis[] = "--model PATH (--prompt TEXT | --dialog FILE.json | --prompts FILE) [flags]";
constexpr char kSummary[] = "Generates one sequence with the CPU (or CUDA) backend, streamed to stdout.";

// Whether argv has --name or --name=... (to pick the mode before parsing).
bool HasFlag(int argc, char** argv, const std::string& name) {
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == name || arg.rfind(name + "=", 0) == 0) return true;
  }
  return false;
}

std::string GenerateUsage() {
  GenerateArgs args;
  FlagSet flags("generate", kSynopsis, kSummary);
  AddFlags(&flags, &args);
  return flags.Usage();
}

int RunGenerate(int argc, char** argv) {
  if (HasFlag(argc, argv, "--help") || HasFlag(argc, argv, "-h")) {
    std::printf("%s\nWith --prompts FILE (many prompts through the continuous-batching engine loop):\n\n%s",
                GenerateUsage().c_str(), GenerateBatchUsage().c_str());
    return 0;
  }
  if (HasFlag(argc, argv, "--prompts")) return RunGenerateBatch(argc, argv);
  GenerateArgs args;
  FlagSet flags("generate", kSynopsis, kSummary);
  AddFlags(&flags, &args);
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  absl::Status status = Generate(std::move(args), flags);
  return status.ok() ? 0 : Fail("generate", status);
}

}  // namespace

LLAMA_SUBCOMMAND(generate, "generate text from a prompt, a dialog or a file of prompts", RunGenerate);

}  // namespace llama::cli
