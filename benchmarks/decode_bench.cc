// Single-stream decode on the CPU backend (Google Benchmark): one forward of one token per iteration, at a
// context that cycles through [16, 256), on stories15M when models/stories15M exists, else random weights of the
// same shape (same cost: the forward does not depend on the values). Plus the output-projection GEMV alone, the
// largest single matmul of a step. `llama-chat bench` is the end-to-end figure; this isolates the step.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/huge_page_buffer.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/thread_pool.h"
#include "engine/forward_batch.h"
#include "engine/model/weights.h"

#ifndef LLAMA_SOURCE_DIR
#define LLAMA_SOURCE_DIR "."  // benchmarks/CMakeLists.txt defines none: run from the repository root
#endif

namespace llama {
namespace {

ModelConfig Stories15MConfig() {
  ModelConfig c;
  c.hidden_size = 288;
  c.intermediate_size = 768;
  c.num_hidden_layers = 6;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 6;
  c.vocab_size = 32000;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = true;
  return c;
}

ModelWeights BenchWeights() {
  auto loaded = LoadModelWeights(std::string(LLAMA_SOURCE_DIR) + "/models/stories15M");
  return loaded.ok() ? std::move(*loaded) : MakeRandomWeights(Stories15MConfig(), 1);
}

// A one-token step of sequence 0 at position pos over blocks 0..15 (block_size 16).
ForwardInput DecodeStep(int32_t token, int pos) {
  std::vector<int32_t> blocks(16);
  std::iota(blocks.begin(), blocks.end(), 0);
  ForwardBatchBuilder batch(16);
  batch.AddSequence({token}, pos, blocks);
  OutputRow row;
  row.params.temperature = 0.0f;
  batch.AddOutput(std::move(row));
  return std::move(batch).Build();
}

void BM_DecodeStep(benchmark::State& state) {
  CpuBackendOptions options;
  options.num_threads = static_cast<int>(state.range(0));
  options.num_blocks = 16;
  auto backend = CpuBackend::Create(BenchWeights(), options);
  if (!backend.ok()) {
    state.SkipWithError(std::string(backend.status().message()).c_str());
    return;
  }
  ForwardOutput out;
  for (int pos = 0; pos < 16; ++pos) (void)(*backend)->Forward(DecodeStep(1 + pos, pos), &out);
  int pos = 16;
  int32_t token = 100;
  for (auto _ : state) {
    benchmark::DoNotOptimize((*backend)->Forward(DecodeStep(token, pos), &out));
    token = out.sampled_tokens[0];
    pos = pos + 1 < 256 ? pos + 1 : 16;
  }
  state.SetItemsProcessed(state.iterations());  // items/s = decode tokens/s
}
BENCHMARK(BM_DecodeStep)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMicrosecond);

// logits[32000] = W[32000, 288] · x: 36.9 MB of fp32 weights per call, so this measures how fast the kernel
// streams weights. layout 0: row-major in a std::vector (4 KiB pages); 1: row-major on huge pages; 2: packed
// 4-row tiles on huge pages (what the backend uses).
void BM_OutputProjectionGemv(benchmark::State& state) {
  const int vocab = 32000, dim = 288;
  const int threads = static_cast<int>(state.range(0)), layout = static_cast<int>(state.range(1));
  const size_t w_size = static_cast<size_t>(vocab) * dim;
  std::vector<float> w(w_size), x(dim), y(vocab);
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  for (float& v : w) v = d(rng);
  for (float& v : x) v = d(rng);
  HugePageBuffer huge(layout == 2 ? PackedSize(vocab, dim) : layout == 1 ? w_size : 0);
  if (layout == 1) std::copy(w.begin(), w.end(), huge.data());
  if (layout == 2) PackWeights(w.data(), vocab, dim, huge.data());
  const float* weights = layout == 0 ? w.data() : huge.data();
  ThreadPool pool(threads);
  for (auto _ : state) {
    pool.ParallelForRange(vocab, 4, [&](int64_t r0, int64_t r1, int) {
      if (layout == 2) {
        PackedMatMulRows(x.data(), weights, y.data(), 1, dim, vocab, r0, r1, false);
      } else {
        MatMulRows(x.data(), weights, y.data(), 1, dim, vocab, r0, r1, false);
      }
    });
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w_size * sizeof(float)));
}
BENCHMARK(BM_OutputProjectionGemv)
    ->ArgsProduct({{1, 2}, {0, 1, 2}})
    ->ArgNames({"threads", "layout"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace llama

BENCHMARK_MAIN();
