#include "tools/backend_flags.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cuda_plugin.h"
#include "engine/model/dummy_weight_source.h"
#include "engine/model/model_source.h"

namespace llama::cli {

void AddModelFlag(FlagSet* flags, std::string* model_path, bool required) {
  const std::string help = "model directory (config.json, model.safetensors, tokenizer.model) or GGUF file";
  if (required) {
    flags->AddRequired("model", model_path, help);
  } else {
    flags->Add("model", model_path, help + "; or give --dummy_weights");
  }
  flags->AddAlias("model_dir", "model");
}

void AddDummyWeightsFlag(FlagSet* flags, std::string* dummy_weights) {
  flags->Add("dummy_weights", dummy_weights,
             "random weights of a named shape instead of --model: llama-2-7b, llama-2-13b, tinyllama-1.1b, "
             "stories15M, tiny");
}

void AddBackendFlags(FlagSet* flags, std::string* backend, std::string* dtype, int* num_threads,
                     std::string* weights_dtype) {
  flags->Add("backend", backend, "cpu or cuda (the CUDA plugin, libllama_cuda.so)");
  flags->Add("dtype", dtype, "CUDA weights and KV cache: bf16, fp16 or fp32 (ignored on cpu)");
  flags->Add("weights_dtype", weights_dtype, "CPU backend weight storage: f32, bf16 or q8_0");
  flags->Add("threads", num_threads, "CPU backend threads (0: all cores)");
}

void AddKvDtypeFlag(FlagSet* flags, std::string* kv_dtype) {
  flags->Add("kv_dtype", kv_dtype,
             "CPU backend KV cache: f32, f16 or bf16 (half types: half the bytes per token; refused with "
             "--backend cuda, whose type is --dtype)");
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenModel(const std::string& model_path,
                                                         const std::string& dummy_weights) {
  if (model_path.empty() == dummy_weights.empty()) {
    return absl::InvalidArgumentError("give exactly one of --model and --dummy_weights");
  }
  if (!dummy_weights.empty()) {
    ASSIGN_OR_RETURN(std::unique_ptr<DummyWeightSource> dummy, DummyWeightSource::Create(dummy_weights, 1));
    return std::unique_ptr<WeightSource>(std::move(dummy));
  }
  return OpenWeightSource(model_path);
}

void AddSamplingFlags(FlagSet* flags, SamplingParams* params, uint64_t* seed) {
  flags->Add("temperature", &params->temperature, "0 = greedy");
  flags->Add("top_p", &params->top_p, "nucleus sampling mass in (0, 1]; 1 = off");
  flags->Add("top_k", &params->top_k, "keep the k most likely tokens; 0 = off");
  flags->Add("repetition_penalty", &params->repetition_penalty, "CTRL-style penalty on seen tokens; 1 = off");
  flags->Add("seed", seed, "the counter-based sampler's seed");
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& backend, const std::string& dtype,
                                                       const std::string& weights_dtype, const WeightSource& source,
                                                       CpuBackendOptions cpu_options, const std::string& kv_dtype) {
  ASSIGN_OR_RETURN(cpu_options.weights_dtype, ParseWeightsDtype(weights_dtype));
  ASSIGN_OR_RETURN(cpu_options.kv_dtype, ParseKvDtype(kv_dtype));
  if (backend == "cpu") {
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> cpu, CpuBackend::Create(source, cpu_options));
    return std::unique_ptr<Backend>(std::move(cpu));
  }
  if (backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be cpu or cuda, got '", backend, "'"));
  }
  if (cpu_options.weights_dtype != WeightsDtype::kF32 || cpu_options.kv_dtype != KvDtype::kF32) {
    return absl::InvalidArgumentError(
        "--weights_dtype and --kv_dtype are CPU backend flags; the CUDA backend's type is --dtype");
  }
  ASSIGN_OR_RETURN(const ModelWeights weights, MaterializeWeights(source));
  cuda::CudaBackendOptions options;
  options.dtype = dtype;
  options.block_size = cpu_options.block_size;
  options.num_blocks = cpu_options.num_blocks;
  return CreateCudaBackendViaPlugin(weights, options);
}

int BackendThreads(const Backend& backend) {
  const auto* cpu = dynamic_cast<const CpuBackend*>(&backend);
  return cpu != nullptr ? cpu->num_threads() : 0;
}

}  // namespace llama::cli
