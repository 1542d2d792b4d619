// Aggregate generation throughput through the EngineLoop on the CPU backend: N concurrent sequences with fixed
// prompt and output lengths (EOS ignored), for each N in --concurrency. Prints generated tokens/s per run and the
// median over --repeats runs. Continuous batching pays off when the backend reads the weights once per step for
// all sequences: tokens/s should grow with N until compute, not memory bandwidth, is the limit.
//
//   throughput_bench --model_dir models/stories15M [--concurrency 1,4,16,64] [--prompt_tokens 32]
//                    [--max_tokens 128] [--repeats 3] [--num_threads 0]
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"
#include "engine/text/tokenizer.h"
#include "scheduler/batch_runner.h"

namespace llama {
namespace {

struct Args {
  std::string model_dir = "models/stories15M";
  std::vector<int> concurrency = {1, 4, 16, 64};
  int prompt_tokens = 32;
  int max_tokens = 128;
  int repeats = 3;
  int num_threads = 0;
};

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    bool ok = true;
    if (flag == "--model_dir") {
      args->model_dir = value;
    } else if (flag == "--concurrency") {
      args->concurrency.clear();
      for (absl::string_view part : absl::StrSplit(value, ',')) {
        int n = 0;
        ok = ok && absl::SimpleAtoi(part, &n) && n > 0;
        args->concurrency.push_back(n);
      }
    } else if (flag == "--prompt_tokens") {
      ok = absl::SimpleAtoi(value, &args->prompt_tokens);
    } else if (flag == "--max_tokens") {
      ok = absl::SimpleAtoi(value, &args->max_tokens);
    } else if (flag == "--repeats") {
      ok = absl::SimpleAtoi(value, &args->repeats);
    } else if (flag == "--num_threads") {
      ok = absl::SimpleAtoi(value, &args->num_threads);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad flag %s %s\n", flag.c_str(), value.c_str());
      return false;
    }
  }
  return argc % 2 == 1;
}

// n prompts of exactly prompt_tokens ids (BOS + a story opening, repeated/truncated), each a little different.
std::vector<GenerationRequest> MakeRequests(const Tokenizer& tokenizer, int n, const Args& args) {
  const std::vector<int32_t> text = tokenizer.Encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
      "friends. One day, she saw a big red ball under a tree and wanted to play with it.");
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    r.id = static_cast<uint64_t>(i + 1);
    r.prompt_tokens.push_back(tokenizer.bos_id());
    for (int j = 0; static_cast<int>(r.prompt_tokens.size()) < args.prompt_tokens; ++j) {
      r.prompt_tokens.push_back(text[(i + j) % text.size()]);
    }
    r.sampling.temperature = 0;
    r.max_tokens = args.max_tokens;
    r.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  return requests;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

int Main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  auto tokenizer = Tokenizer::Load(args.model_dir + "/tokenizer.model");
  auto weights = LoadModelWeights(args.model_dir);
  if (!tokenizer.ok() || !weights.ok()) {
    std::fprintf(stderr, "cannot load %s\n", args.model_dir.c_str());
    return 1;
  }
  const int max_n = *std::max_element(args.concurrency.begin(), args.concurrency.end());
  CpuBackendOptions options;
  options.num_threads = args.num_threads;
  options.block_size = 16;
  // Room for every sequence at once: the benchmark measures batching, not preemption.
  options.num_blocks = max_n * ((args.prompt_tokens + args.max_tokens + 15) / 16);
  auto backend = CpuBackend::Create(std::move(*weights), options);
  if (!backend.ok()) {
    std::fprintf(stderr, "%s\n", backend.status().ToString().c_str());
    return 1;
  }
  std::printf("model %s, prompt %d tokens, output %d tokens, %d threads, %d KV blocks\n", args.model_dir.c_str(),
              args.prompt_tokens, args.max_tokens, (*backend)->num_threads(), options.num_blocks);
  // tokens per CPU-second (process CPU time, all threads) is reported too: on a shared machine wall-clock
  // throughput mostly measures the other tenants, while CPU time per token shows what batching saves.
  std::printf("%-12s %-8s %-28s %-16s %s\n", "concurrency", "steps", "tokens/s per run", "median tokens/s",
              "median tokens/cpu-s");
  for (int n : args.concurrency) {
    EngineLoopOptions loop_options;
    loop_options.scheduler.max_num_seqs = std::max(n, 1);
    loop_options.scheduler.max_num_batched_tokens = std::max(512, n);
    std::vector<double> rates;
    std::vector<double> cpu_rates;
    std::string runs;
    int64_t steps = 0;
    for (int r = 0; r < args.repeats; ++r) {
      const std::clock_t cpu_start = std::clock();
      auto result = RunBatch(backend->get(), tokenizer->get(), loop_options, MakeRequests(**tokenizer, n, args));
      if (!result.ok()) {
        std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
        return 1;
      }
      rates.push_back(result->num_generated_tokens / result->wall_s);
      const double cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
      cpu_rates.push_back(result->num_generated_tokens / cpu_s);
      steps = result->snapshot.num_steps;
      runs += std::to_string(static_cast<int>(rates.back())) + " ";
    }
    std::printf("%-12d %-8lld %-28s %-16.1f %.1f\n", n, static_cast<long long>(steps), runs.c_str(),
                Median(rates), Median(cpu_rates));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace llama

int main(int argc, char** argv) { return llama::Main(argc, argv); }
