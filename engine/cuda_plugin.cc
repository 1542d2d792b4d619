#include "engine/cuda_plugin.h"

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/module_path.h"
#include "base/status_macros.h"

namespace llama {

absl::StatusOr<const CudaPluginApi*> LoadCudaPlugin() {
  static std::once_flag once;
  static const CudaPluginApi* api = nullptr;
  static std::string error;
  std::call_once(once, [] {
#ifndef LLAMA_CUDA_PLUGIN_PATH
    error = "this build has no CUDA backend (configured with LLAMA_CUDA=OFF)";
    return;
#else
    for (const std::string& candidate : ModuleCandidates(kCudaPluginFileName, LLAMA_CUDA_PLUGIN_PATH)) {
      void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        absl::StrAppend(&error, dlerror(), "; ");
        continue;
      }
      using ApiFn = const CudaPluginApi* (*)();
      auto fn = reinterpret_cast<ApiFn>(dlsym(handle, kCudaPluginSymbol));
      if (fn == nullptr) {
        absl::StrAppend(&error, candidate, ": no symbol ", kCudaPluginSymbol, "; ");
        continue;
      }
      const CudaPluginApi* table = fn();
      if (table == nullptr || table->abi_version != kCudaPluginAbiVersion) {
        absl::StrAppend(&error, candidate, ": plugin ABI version mismatch; ");
        continue;
      }
      api = table;
      return;
    }
#endif
  });
  if (api == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("--backend cuda: cannot load the CUDA backend: ", error));
  }
  return api;
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackendViaPlugin(const ModelWeights& weights,
                                                                   const cuda::CudaBackendOptions& options) {
  ASSIGN_OR_RETURN(const CudaPluginApi* api, LoadCudaPlugin());
  std::unique_ptr<Backend> backend;
  RETURN_IF_ERROR(api->create_from_weights(weights, options, &backend));
  return backend;
}

}  // namespace llama
