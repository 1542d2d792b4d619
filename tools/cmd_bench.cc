// llama-chat bench: single-stream decode throughput of the CPU backend.
//   llama-chat bench --model PATH | --dummy_weights SHAPE [--weights_dtype f32|bf16|q8_0] [--prompt_tokens N]
//                    [--gen_tokens N] [--threads N] [--repeats R]
// Each run prefills a fixed prompt of N tokens (BOS + deterministic ids) and decodes gen_tokens tokens greedily
// (no stop tokens, so every run does the same work); decode tokens/s exclude the prefill. One warm-up run, then
// R timed runs; prints each run and the median.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/simple_generate.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

struct BenchArgs {
  std::string model_path;
  std::string dummy_weights;
  std::string weights_dtype = "f32";
  int prompt_tokens = 16;
  int gen_tokens = 128;
  int repeats = 5;
  CpuBackendOptions cpu;
  std::string backend = "cpu";
  std::string dtype = cuda::CudaBackendOptions{}.dtype;
  std::string kv_dtype = KvDtypeName(CpuBackendOptions{}.kv_dtype);  // --kv_dtype
};

absl::Status Validate(const BenchArgs& args) {
  if (args.prompt_tokens < 1) return absl::InvalidArgumentError("--prompt_tokens must be >= 1");
  if (args.gen_tokens < 2) return absl::InvalidArgumentError("--gen_tokens must be >= 2");
  if (args.repeats < 1) return absl::InvalidArgumentError("--repeats must be >= 1");
  return absl::OkStatus();
}

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// BOS, then ids spread over the vocabulary (deterministic, so runs and machines are comparable).
std::vector<int32_t> BenchPrompt(const ModelConfig& config, int n) {
  std::vector<int32_t> ids = {config.bos_token_id};
  for (int i = 1; i < n; ++i) ids.push_back(3 + (i * 7919) % (config.vocab_size - 3));
  return ids;
}

absl::Status RunSingleStream(const BenchArgs& args) {
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, OpenModel(args.model_path, args.dummy_weights));
  const ModelConfig config = source->config();
  if (args.prompt_tokens + args.gen_tokens > config.max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("prompt_tokens + gen_tokens exceed the context of ",
                                                   config.max_position_embeddings));
  }
  CpuBackendOptions options = args.cpu;
  options.num_blocks = (config.max_position_embeddings + options.block_size - 1) / options.block_size;
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                   CreateBackend(args.backend, args.dtype, args.weights_dtype, *source, options, args.kv_dtype));
  source.reset();  // a file-backed source's mapping is no longer needed
  const std::vector<int32_t> prompt = BenchPrompt(config, args.prompt_tokens);
  GenerateOptions gen;
  gen.params.temperature = 0.0f;
  gen.max_new_tokens = args.gen_tokens;
  const auto* cpu = dynamic_cast<const CpuBackend*>(backend.get());
  std::printf("model %s: prompt %d tokens, %d generated, %d threads, backend %s (%s kernels, %s weights, %.1f MB, "
              "kv %s)\n",
              args.model_path.empty() ? ("dummy " + args.dummy_weights).c_str() : args.model_path.c_str(),
              args.prompt_tokens, args.gen_tokens, BackendThreads(*backend), backend->name().c_str(),
              cpu != nullptr ? CpuBackend::isa_name() : "n/a",
              cpu != nullptr ? WeightsDtypeName(cpu->weights_dtype()) : "n/a",
              cpu != nullptr ? cpu->weight_bytes() / 1e6 : 0.0, cpu != nullptr ? args.kv_dtype.c_str() : "n/a");
  RETURN_IF_ERROR(SimpleGenerate(backend.get(), prompt, gen).status());  // warm-up: caches, page faults
  std::vector<double> rates;
  for (int r = 0; r < args.repeats; ++r) {
    const double cpu0 = ProcessCpuSeconds();
    ASSIGN_OR_RETURN(const GenerateResult result, SimpleGenerate(backend.get(), prompt, gen));
    const double cpu_ms_per_token = (ProcessCpuSeconds() - cpu0) * 1e3 / result.tokens.size();
    rates.push_back(result.decode_tokens_per_second());
    std::printf("run %d: decode %.1f tokens/s (%d steps in %.1f ms), prefill %.1f ms, process CPU %.2f ms/token\n",
                r, rates.back(), result.decode_steps, result.decode_seconds * 1e3, result.prefill_seconds * 1e3,
                cpu_ms_per_token);
  }
  std::sort(rates.begin(), rates.end());
  std::printf("median decode: %.1f tokens/s over %d runs (min %.1f, max %.1f)\n", rates[rates.size() / 2],
              args.repeats, rates.front(), rates.back());
  return absl::OkStatus();
}

int RunBench(int argc, char** argv) {
  BenchArgs args;
  FlagSet flags("bench", "--model PATH [flags]",
                "Single-stream decode tokens/s: a fixed prompt, greedy decoding without stop tokens, one warm-up run "
                "and the median of the timed runs.");
  AddModelFlag(&flags, &args.model_path, /*required=*/false);
  AddDummyWeightsFlag(&flags, &args.dummy_weights);
  flags.Add("prompt_tokens", &args.prompt_tokens, "prompt length (BOS + deterministic ids)");
  flags.Add("gen_tokens", &args.gen_tokens, "tokens generated per run");
  flags.Add("repeats", &args.repeats, "timed runs");
  AddBackendFlags(&flags, &args.backend, &args.dtype, &args.cpu.num_threads, &args.weights_dtype);
  AddKvDtypeFlag(&flags, &args.kv_dtype);
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  absl::Status status = Validate(args);
  if (status.ok()) status = RunSingleStream(args);
  return status.ok() ? 0 : Fail("bench", status);
}

}  // namespace

LLAMA_SUBCOMMAND(bench, "single-stream decode tokens/s of the CPU backend", RunBench);

}  // namespace llama::cli
