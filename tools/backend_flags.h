// The flags several llama-chat subcommands share, declared once: --model (or --dummy_weights), --backend cpu|cuda,
// --dtype, --weights_dtype and --threads (and the one place that builds the chosen Backend), and the sampling flags. CUDA comes from the run-time plugin
// (engine/cuda_plugin.h); without it --backend cuda is FAILED_PRECONDITION.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/cuda/cuda_backend_factory.h"
#include "engine/model/weight_source.h"
#include "engine/model/weights.h"
#include "engine/sampling.h"
#include "tools/cli_flags.h"

namespace llama::cli {

// --model PATH, required: a model directory (config.json, model.safetensors or shards, tokenizer.model) or a GGUF
// file (engine/model/model_source.h); --model_dir is its older spelling.
// required = false: for commands that also take --dummy_weights (OpenModel then wants exactly one of the two).
void AddModelFlag(FlagSet* flags, std::string* model_path, bool required = true);
// --dummy_weights NAME: random weights of a named shape (engine/model/model_shapes.h) instead of --model.
void AddDummyWeightsFlag(FlagSet* flags, std::string* dummy_weights);
// --backend, --dtype (CUDA weights/KV type), --weights_dtype (CPU weight storage: f32, bf16, q8_0) and --threads
// (CPU backend threads), bound to the caller's fields.
void AddBackendFlags(FlagSet* flags, std::string* backend, std::string* dtype, int* num_threads,
                     std::string* weights_dtype);
// --kv_dtype f32|f16|bf16: the CPU backend's KV cache element type (engine/cpu/kv_dtype.h), bound to the caller's
// string; CreateBackend parses it (an unknown name is INVALID_ARGUMENT naming the flag). Ignored on cuda.
void AddKvDtypeFlag(FlagSet* flags, std::string* kv_dtype);

// The weights: the model at model_path (a directory or a GGUF file: engine/model/model_source.h), or, when
// dummy_weights names a shape, DummyWeightSource of it (seed 1). INVALID_ARGUMENT unless exactly one is given.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenModel(const std::string& model_path,
                                                         const std::string& dummy_weights);
// --temperature, --top_p, --top_k, --repetition_penalty, --seed, bound to the caller's fields.
void AddSamplingFlags(FlagSet* flags, SamplingParams* params, uint64_t* seed);

// backend: "cpu" or "cuda". dtype: the CUDA weights/KV type (bf16, fp16, fp32; ignored for cpu). weights_dtype:
// the CPU backend's weight storage (ParseWeightsDtype; must be f32 for cuda, which has --dtype). The CPU backend
// reads the source panel by panel; CUDA takes host fp32 weights (MaterializeWeights). cpu_options apply to the CPU
// backend, its kv_dtype replaced by kv_dtype's (--kv_dtype); the CUDA backend takes their block_size and
// num_blocks.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& backend, const std::string& dtype,
                                                       const std::string& weights_dtype, const WeightSource& source,
                                                       CpuBackendOptions cpu_options,
                                                       const std::string& kv_dtype = "f32");

// Threads of a CPU backend, 0 for any other (for reports).
int BackendThreads(const Backend& backend);

}  // namespace llama::cli
