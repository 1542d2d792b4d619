#include "tools/generate_batch.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/text/model_tokenizer.h"
#include "engine/text/tokenizer.h"
#include "scheduler/batch_runner.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"
#include "tools/text_file.h"

namespace llama::cli {
namespace {

// Defaults: the engine loop's and the CPU backend's, greedy sampling and 128 new tokens per prompt.
struct GenerateBatchArgs {
  std::string model_path;
  std::string prompts_path;
  CpuBackendOptions cpu;        // num_blocks 0: the backend's default pool
  std::string backend = "cpu";  // --backend cpu|cuda
  std::string dtype = cuda::CudaBackendOptions{}.dtype;
  std::string kv_dtype = KvDtypeName(CpuBackendOptions{}.kv_dtype);  // --kv_dtype
  std::string weights_dtype = "f32";  // --weights_dtype f32|bf16|q8_0
  int max_tokens = 128;
  uint64_t seed = 0;
  SamplingParams sampling = {.temperature = 0.0f};
  EngineLoopOptions loop;
};

constexpr char kSynopsis[] = "--model PATH --prompts FILE [flags]";
constexpr char kSummary[] =
    "Runs every line of FILE through the continuous-batching engine loop at once; one result line per prompt.";

void AddFlags(FlagSet* flags, GenerateBatchArgs* args) {
  AddModelFlag(flags, &args->model_path);
  flags->AddRequired("prompts", &args->prompts_path, "one prompt per line (BOS + its ids)");
  flags->Add("max_tokens", &args->max_tokens, "generated tokens per prompt at most");
  AddSamplingFlags(flags, &args->sampling, &args->seed);
  flags->Add("num_kv_blocks", &args->cpu.num_blocks, "KV cache blocks (0: sized by the backend)");
  flags->Add("max_num_batched_tokens", &args->loop.scheduler.max_num_batched_tokens, "tokens in one engine step at most");
  flags->Add("max_num_seqs", &args->loop.scheduler.max_num_seqs, "sequences in one engine step at most");
  flags->Add("enable_prefix_caching", &args->loop.scheduler.enable_prefix_caching,
             "reuse the KV blocks of prompts' common prefixes");
  AddBackendFlags(flags, &args->backend, &args->dtype, &args->cpu.num_threads, &args->weights_dtype);
  AddKvDtypeFlag(flags, &args->kv_dtype);
}

absl::Status Validate(const GenerateBatchArgs& args) {
  RETURN_IF_ERROR(args.sampling.Validate());
  RETURN_IF_ERROR(args.loop.Validate());
  if (args.cpu.num_blocks < 0) return absl::InvalidArgumentError("--num_kv_blocks must be >= 0");
  if (args.max_tokens < 1) return absl::InvalidArgumentError("--max_tokens must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile("prompts", path));
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final newline ends a line, it starts none
  for (std::string& line : lines) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
  }
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat("--prompts ", path, ": no prompts"));
  return lines;
}

// One output line: the text with newline and backslash escaped, so each result stays on its own line.
std::string EscapeLine(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
  return out;
}

absl::Status GenerateBatch(const GenerateBatchArgs& args) {
  ASSIGN_OR_RETURN(std::vector<std::string> prompts, ReadLines(args.prompts_path));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadModelTokenizer(args.model_path));
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenModel(args.model_path, ""));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                   CreateBackend(args.backend, args.dtype, args.weights_dtype, *source, args.cpu, args.kv_dtype));
  source.reset();

  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r;
    r.id = i + 1;
    r.prompt_tokens.push_back(tokenizer->bos_id());
    for (int32_t id : tokenizer->Encode(prompts[i])) r.prompt_tokens.push_back(id);
    r.sampling = args.sampling;
    r.seed = args.seed;
    r.max_tokens = args.max_tokens;
    requests.push_back(std::move(r));
  }
  EngineLoopOptions loop = args.loop;
  loop.model_source = args.model_path;
  ASSIGN_OR_RETURN(BatchResult result, RunBatch(backend.get(), tokenizer.get(), loop, std::move(requests)));

  int num_errors = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::printf("%s\n", EscapeLine(result.texts[i]).c_str());
    const FinishInfo& info = result.finish[i];
    if (!info.status.ok()) {
      ++num_errors;
      std::fprintf(stderr, "prompt %zu: %s\n", i + 1, info.status.ToString().c_str());
    }
  }
  const KvCacheSpec& kv = backend->kv_cache();
  std::fprintf(stderr,
               "prompts %zu  steps %lld  preemptions %lld  generated tokens %lld  wall %.3f s  %.1f tokens/s  "
               "prompt tokens from the prefix cache %lld\n"
               "kv pool: %d blocks x %d tokens (%.1f MiB), max_num_seqs %d, max_num_batched_tokens %d, "
               "threads %d\n",
               prompts.size(), static_cast<long long>(result.snapshot.num_steps),
               static_cast<long long>(result.snapshot.num_preemptions),
               static_cast<long long>(result.num_generated_tokens), result.wall_s,
               result.wall_s > 0 ? result.num_generated_tokens / result.wall_s : 0.0,
               static_cast<long long>(result.snapshot.prefix_caches.at(0).hits),
               kv.num_blocks, kv.block_size,
               kv.total_bytes() / 1048576.0, args.loop.scheduler.max_num_seqs,
               args.loop.scheduler.max_num_batched_tokens, BackendThreads(*backend));
  if (num_errors > 0) return absl::InternalError(absl::StrCat(num_errors, " prompt(s) failed"));
  return absl::OkStatus();
}

}  // namespace

std::string GenerateBatchUsage() {
  GenerateBatchArgs args;
  FlagSet flags("generate", kSynopsis, kSummary);
  AddFlags(&flags, &args);
  return flags.Usage();
}

int RunGenerateBatch(int argc, char** argv) {
  GenerateBatchArgs args;
  FlagSet flags("generate", kSynopsis, kSummary);
  AddFlags(&flags, &args);
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  absl::Status status = Validate(args);
  if (status.ok()) status = GenerateBatch(args);
  return status.ok() ? 0 : Fail("generate", status);
}

}  // namespace llama::cli
