#include "tools/generate_batch.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/text/tokenizer.h"
#include "scheduler/batch_runner.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"

namespace llama::cli {
namespace {

struct GenerateBatchArgs {
  std::string model_dir;
  std::string prompts_path;
  int num_kv_blocks = 0;  // 0: the backend's default pool
  int num_threads = 0;
  std::string backend = "cpu";  // --backend cpu|cuda
  std::string dtype = "bf16";   // --dtype for cuda
  int max_tokens = 128;
  uint64_t seed = 0;
  SamplingParams sampling;
  EngineLoopOptions loop;
};

absl::StatusOr<GenerateBatchArgs> ParseArgs(int argc, char** argv) {
  ASSIGN_OR_RETURN(CliFlags flags,
                   CliFlags::Parse(argc, argv,
                                   {"model_dir", "prompts", "num_kv_blocks", "max_num_batched_tokens",
                                    "max_num_seqs", "max_tokens", "temperature", "top_p", "top_k",
                                    "repetition_penalty", "seed", "num_threads", "backend", "dtype"}));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional()[0], "'"));
  }
  GenerateBatchArgs args;
  ASSIGN_OR_RETURN(args.model_dir, flags.RequireString("model_dir"));
  ASSIGN_OR_RETURN(args.prompts_path, flags.RequireString("prompts"));
  ASSIGN_OR_RETURN(args.num_kv_blocks, flags.GetInt("num_kv_blocks", 0));
  ASSIGN_OR_RETURN(args.num_threads, flags.GetInt("num_threads", 0));
  args.backend = flags.GetString("backend", args.backend);
  args.dtype = flags.GetString("dtype", args.dtype);
  ASSIGN_OR_RETURN(args.max_tokens, flags.GetInt("max_tokens", 128));
  ASSIGN_OR_RETURN(const int seed, flags.GetInt("seed", 0));
  args.seed = static_cast<uint64_t>(seed);
  ASSIGN_OR_RETURN(const double temperature, flags.GetDouble("temperature", 0.0));
  ASSIGN_OR_RETURN(const double top_p, flags.GetDouble("top_p", 1.0));
  ASSIGN_OR_RETURN(const double penalty, flags.GetDouble("repetition_penalty", 1.0));
  args.sampling.temperature = static_cast<float>(temperature);
  args.sampling.top_p = static_cast<float>(top_p);
  args.sampling.repetition_penalty = static_cast<float>(penalty);
  ASSIGN_OR_RETURN(args.sampling.top_k, flags.GetInt("top_k", 0));
  RETURN_IF_ERROR(args.sampling.Validate());
  SchedulerConfig& sched = args.loop.scheduler;
  ASSIGN_OR_RETURN(sched.max_num_batched_tokens, flags.GetInt("max_num_batched_tokens", sched.max_num_batched_tokens));
  ASSIGN_OR_RETURN(sched.max_num_seqs, flags.GetInt("max_num_seqs", sched.max_num_seqs));
  RETURN_IF_ERROR(args.loop.Validate());
  if (args.num_kv_blocks < 0) return absl::InvalidArgumentError("--num_kv_blocks must be >= 0");
  if (args.max_tokens < 1) return absl::InvalidArgumentError("--max_tokens must be >= 1");
  return args;
}

absl::StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--prompts ", path, ": cannot open"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
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
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(args.model_dir + "/tokenizer.model"));
  ASSIGN_OR_RETURN(ModelWeights weights, LoadModelWeights(args.model_dir));
  CpuBackendOptions backend_options;
  backend_options.num_threads = args.num_threads;
  backend_options.num_blocks = args.num_kv_blocks;
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                   CreateBackend(args.backend, args.dtype, std::move(weights), backend_options));

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
  ASSIGN_OR_RETURN(BatchResult result, RunBatch(backend.get(), tokenizer.get(), args.loop, std::move(requests)));

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
               "prompts %zu  steps %lld  preemptions %lld  generated tokens %lld  wall %.3f s  %.1f tokens/s\n"
               "kv pool: %d blocks x %d tokens (%.1f MiB), max_num_seqs %d, max_num_batched_tokens %d, "
               "threads %d\n",
               prompts.size(), static_cast<long long>(result.snapshot.num_steps),
               static_cast<long long>(result.snapshot.num_preemptions),
               static_cast<long long>(result.num_generated_tokens), result.wall_s,
               result.wall_s > 0 ? result.num_generated_tokens / result.wall_s : 0.0, kv.num_blocks, kv.block_size,
               kv.total_bytes() / 1048576.0, args.loop.scheduler.max_num_seqs,
               args.loop.scheduler.max_num_batched_tokens, BackendThreads(*backend));
  if (num_errors > 0) return absl::InternalError(absl::StrCat(num_errors, " prompt(s) failed"));
  return absl::OkStatus();
}

}  // namespace

int RunGenerateBatch(int argc, char** argv) {
  absl::StatusOr<GenerateBatchArgs> args = ParseArgs(argc, argv);
  if (!args.ok()) return Fail("generate", args.status());
  if (absl::Status status = GenerateBatch(*args); !status.ok()) return Fail("generate", status);
  return 0;
}

}  // namespace llama::cli
