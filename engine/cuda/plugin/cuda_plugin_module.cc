// libllama_cuda.so: exports the CUDA backend to processes that load it at run time (engine/cuda_plugin.h).
#include "engine/cuda/cuda_backend_factory.h"
#include "engine/cuda_plugin.h"

namespace {

int DeviceCount() { return llama::cuda::CudaDeviceCount(); }

absl::Status CreateFromWeights(const llama::ModelWeights& weights, const llama::cuda::CudaBackendOptions& options,
                               std::unique_ptr<llama::Backend>* backend) {
  auto created = llama::cuda::CreateCudaBackendFromWeights(weights, options);
  if (!created.ok()) return created.status();
  *backend = std::move(*created);
  return absl::OkStatus();
}

absl::Status Create(const llama::cuda::CudaBackendOptions& options, std::unique_ptr<llama::Backend>* backend) {
  auto created = llama::cuda::CreateCudaBackend(options);
  if (!created.ok()) return created.status();
  *backend = std::move(*created);
  return absl::OkStatus();
}

const llama::CudaPluginApi kApi = {llama::kCudaPluginAbiVersion, &DeviceCount, &CreateFromWeights, &Create};

}  // namespace

extern "C" __attribute__((visibility("default"))) const llama::CudaPluginApi* llama_cuda_plugin_api() { return &kApi; }
