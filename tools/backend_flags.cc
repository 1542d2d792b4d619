#include "tools/backend_flags.h"

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "engine/cuda_plugin.h"

namespace llama::cli {

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& backend, const std::string& dtype,
                                                       ModelWeights weights, const CpuBackendOptions& cpu_options) {
  if (backend == "cpu") {
    ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> cpu, CpuBackend::Create(std::move(weights), cpu_options));
    return std::unique_ptr<Backend>(std::move(cpu));
  }
  if (backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("--backend must be cpu or cuda, got '", backend, "'"));
  }
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
