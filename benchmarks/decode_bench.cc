// Single-stream decode on the CPU backend (Google Benchmark): one forward of one token per iteration, at a
// context that cycles through [16, 256), on stories15M when models/stories15M exists, else dummy weights of the
// same shape (same cost: the forward does not depend on the values), or on --dummy_weights SHAPE
// (engine/model/model_shapes.h, e.g. llama-2-7b), with the matrices stored as --weights_dtype f32|bf16|q8_0.
// Plus the output-projection GEMV alone, the largest single matmul of a step. `llama-chat bench` is the
// end-to-end figure; this isolates the step. And the KV cache element type (f32, f16, bf16) at long contexts: a
// 16-sequence decode step of the whole backend, and the paged-attention kernel alone (LLAMA_CPU_ISA=avx2 runs the
// AVX2 kernels on an AVX-512 machine).
//   decode_bench [--benchmark_filter=BM_DecodeStep] [--weights_dtype q8_0] [--dummy_weights llama-2-7b]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/huge_page_buffer.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/paged_attention.h"
#include "engine/cpu/thread_pool.h"
#include "engine/forward_batch.h"
#include "engine/model/dummy_weight_source.h"
#include "engine/model/model_shapes.h"
#include "engine/model/model_source.h"
#include "engine/model/weights.h"

#ifndef LLAMA_SOURCE_DIR
#define LLAMA_SOURCE_DIR "."  // benchmarks/CMakeLists.txt defines none: run from the repository root
#endif

ABSL_FLAG(std::string, weights_dtype, "f32", "CPU weight storage of BM_DecodeStep: f32, bf16 or q8_0");
ABSL_FLAG(std::string, dummy_weights, "",
          "BM_DecodeStep on dummy weights of this named shape (llama-2-7b, tinyllama-1.1b, ...) instead of stories15M");

namespace llama {
namespace {

absl::StatusOr<std::unique_ptr<WeightSource>> BenchSource() {
  const std::string shape = absl::GetFlag(FLAGS_dummy_weights);
  if (shape.empty()) {
    auto loaded = OpenWeightSource(std::string(LLAMA_SOURCE_DIR) + "/models/stories15M");
    if (loaded.ok()) return loaded;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<DummyWeightSource> dummy,
                   DummyWeightSource::Create(shape.empty() ? "stories15M" : shape, 1));
  return std::unique_ptr<WeightSource>(std::move(dummy));
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

// The backend of the last BM_DecodeStep run, kept for the next run with the same thread count: Google Benchmark
// calls the function several times (iteration estimate, repetitions), and loading a 7B shape takes seconds.
struct CachedBackend {
  int threads = -1;
  std::unique_ptr<CpuBackend> backend;
};

absl::StatusOr<CpuBackend*> DecodeBackend(int threads) {
  static CachedBackend cache;
  if (cache.backend != nullptr && cache.threads == threads) return cache.backend.get();
  cache.backend.reset();  // before loading the next one: two 7B backends need not fit
  CpuBackendOptions options;
  options.num_threads = threads;
  options.num_blocks = 16;
  ASSIGN_OR_RETURN(options.weights_dtype, ParseWeightsDtype(absl::GetFlag(FLAGS_weights_dtype)));
  ASSIGN_OR_RETURN(std::unique_ptr<WeightSource> source, BenchSource());
  ASSIGN_OR_RETURN(cache.backend, CpuBackend::Create(*source, options));
  cache.threads = threads;
  return cache.backend.get();
}

void BM_DecodeStep(benchmark::State& state) {
  absl::StatusOr<CpuBackend*> backend = DecodeBackend(static_cast<int>(state.range(0)));
  if (!backend.ok()) {
    state.SkipWithError(std::string(backend.status().message()).c_str());
    return;
  }
  state.SetLabel(absl::StrCat(absl::GetFlag(FLAGS_dummy_weights).empty() ? "stories15M" : absl::GetFlag(FLAGS_dummy_weights),
                              " ", WeightsDtypeName((*backend)->weights_dtype()), " ", CpuBackend::isa_name()));
  state.counters["weight_MB"] = (*backend)->weight_bytes() / 1e6;
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

constexpr KvDtype kBenchKvDtypes[] = {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16};

// 16 sequences at a context of range(1) tokens, one decode token each per iteration, KV cache of
// kBenchKvDtypes[range(0)]: stories15M's shape (random weights) with a 2048-token context, 2 threads. The 16
// prompts are prefilled once per (dtype, context) and the backend kept for the repetitions (the prefill costs far
// more than the timed steps); each iteration decodes at positions context .. context + 63 in turn. CPU time is the
// process's (all threads): on a shared machine it is steadier than wall time.
struct PrefilledBackend {
  std::unique_ptr<CpuBackend> backend;
  std::vector<std::vector<int32_t>> blocks;
};

PrefilledBackend* Prefilled(KvDtype dtype, int context, int num_seqs, int bs) {
  static std::map<std::pair<int, int>, PrefilledBackend> cache;
  PrefilledBackend& p = cache[{static_cast<int>(dtype), context}];
  if (p.backend != nullptr) return &p;
  ModelConfig config = *NamedModelConfig("stories15M");
  config.max_position_embeddings = 2048;
  CpuBackendOptions options;
  options.num_threads = 2;
  options.kv_dtype = dtype;
  const int blocks_per_seq = (context + 64 + bs - 1) / bs;
  options.num_blocks = num_seqs * blocks_per_seq;
  auto backend = CpuBackend::Create(MakeRandomWeights(config, 1), options);
  if (!backend.ok()) return nullptr;
  p.backend = std::move(*backend);
  p.blocks.resize(num_seqs);
  for (int s = 0; s < num_seqs; ++s) {
    for (int b = 0; b < blocks_per_seq; ++b) p.blocks[s].push_back(b * num_seqs + s);  // interleaved, as in serving
  }
  ForwardOutput out;
  for (int s = 0; s < num_seqs; ++s) {  // prefill in chunks of 256 tokens
    for (int p0 = 0; p0 < context; p0 += 256) {
      std::vector<int32_t> tokens(std::min(256, context - p0));
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = 3 + (s * 131 + p0 + static_cast<int>(i) * 7) % 31000;
      ForwardBatchBuilder batch(bs);
      batch.AddSequence(tokens, p0, p.blocks[s]);
      (void)p.backend->Forward(std::move(batch).Build(), &out);
    }
  }
  return &p;
}

void BM_BatchedDecodeStep(benchmark::State& state) {
  const KvDtype dtype = kBenchKvDtypes[state.range(0)];
  const int context = static_cast<int>(state.range(1)), num_seqs = 16, bs = 16;
  PrefilledBackend* p = Prefilled(dtype, context, num_seqs, bs);
  if (p == nullptr) {
    state.SkipWithError("cannot create the backend");
    return;
  }
  ForwardOutput out;
  int step = 0;
  for (auto _ : state) {
    ForwardBatchBuilder batch(bs);
    for (int s = 0; s < num_seqs; ++s) {
      batch.AddSequence({3 + (s + step) % 31000}, context + step % 64, p->blocks[s]);
      OutputRow row;
      row.params.temperature = 0.0f;
      batch.AddOutput(std::move(row));
    }
    benchmark::DoNotOptimize(p->backend->Forward(std::move(batch).Build(), &out));
    ++step;
  }
  state.SetItemsProcessed(state.iterations() * num_seqs);  // items/s = decode tokens/s
  state.SetLabel(KvDtypeName(dtype));
}
BENCHMARK(BM_BatchedDecodeStep)
    ->ArgsProduct({{0, 1, 2}, {512, 1024}})
    ->ArgNames({"kv", "context"})
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

// The paged-attention kernel alone, one thread: 16 decode queries (one per sequence) at a context of range(1)
// keys, stories15M's 6 heads of 48, blocks of 16 scattered over a cache of kBenchKvDtypes[range(0)] (52 MB of fp32
// K + V at 1024 keys: bigger than the caches, as in serving, where each layer's cache is read once per step).
void BM_PagedAttentionDecode(benchmark::State& state) {
  const KvDtype dtype = kBenchKvDtypes[state.range(0)];
  const int context = static_cast<int>(state.range(1)), num_seqs = 16, nh = 6, hd = 48, bs = 16, layers = 6;
  const int blocks_per_seq = (context + bs - 1) / bs, num_blocks = num_seqs * blocks_per_seq;
  const size_t elems = static_cast<size_t>(num_blocks) * nh * bs * hd;
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  // One cache per layer, visited in turn, so that each call reads from memory rather than from the last call.
  std::vector<std::vector<uint8_t>> k(layers), v(layers);
  std::vector<float> row(elems);
  std::vector<int32_t> slots(elems / (nh * hd));
  for (size_t i = 0; i < slots.size(); ++i) slots[i] = static_cast<int32_t>(i);
  for (int l = 0; l < layers; ++l) {
    k[l].resize(elems * KvDtypeBytes(dtype));
    v[l].resize(elems * KvDtypeBytes(dtype));
    for (float& x : row) x = d(rng);
    WriteKvCache(row.data(), row.data(), slots.data(), static_cast<int>(slots.size()), nh, hd, bs, 0, nh,
                 k[l].data(), v[l].data(), dtype);
  }
  std::vector<int32_t> tables(num_blocks), token_seq(num_seqs), positions(num_seqs, context - 1);
  for (int s = 0; s < num_seqs; ++s) {
    token_seq[s] = s;
    for (int b = 0; b < blocks_per_seq; ++b) tables[s * blocks_per_seq + b] = b * num_seqs + s;
  }
  std::vector<float> q(num_seqs * nh * hd), out(q.size()), scratch(context);
  for (float& x : q) x = d(rng);
  PagedAttentionArgs a;
  a.q = q.data();
  a.block_tables = tables.data();
  a.token_seq = token_seq.data();
  a.positions = positions.data();
  a.out = out.data();
  a.num_tokens = num_seqs;
  a.num_heads = nh;
  a.num_kv_heads = nh;
  a.head_dim = hd;
  a.block_size = bs;
  a.max_blocks_per_seq = blocks_per_seq;
  a.kv_dtype = dtype;
  int layer = 0;
  for (auto _ : state) {
    a.k_cache = k[layer].data();
    a.v_cache = v[layer].data();
    PagedAttention(a, 0, num_seqs * nh, scratch.data());
    benchmark::DoNotOptimize(out.data());
    layer = (layer + 1) % layers;
  }
  state.SetBytesProcessed(state.iterations() * 2 * static_cast<int64_t>(num_seqs) * context * nh * hd *
                          KvDtypeBytes(dtype));
  state.SetLabel(KvDtypeName(dtype));
}
BENCHMARK(BM_PagedAttentionDecode)
    ->ArgsProduct({{0, 1, 2}, {512, 1024}})
    ->ArgNames({"kv", "context"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

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

// Google Benchmark takes its --benchmark_* flags first; absl parses the rest.
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
