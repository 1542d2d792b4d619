// The CUDA backend as a runtime plugin.
//
// The CUDA backend (engine/cuda/) is built as a module, libllama_cuda.so, that the server and the CLI dlopen beside
// their binary only when `--backend cuda` asks for it. Why not link it: libcublasLt carries ~94 KiB of static TLS,
// which every thread of a process that links it must fit into its stack; civetweb (the Prometheus exposer) creates
// its threads with ~100 KiB stacks, so they fail to start and /metrics never comes up. Loaded with dlopen, that TLS is
// allocated lazily per thread instead. It also keeps CUDA libraries out of processes that run on the CPU backend.
//
// This header needs no CUDA headers; the engine links no CUDA library.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/cuda/cuda_backend_factory.h"
#include "engine/model/weights.h"

namespace llama {

// What the plugin exports (one extern "C" symbol returning this table). Bump kCudaPluginAbiVersion on any change.
inline constexpr int kCudaPluginAbiVersion = 1;
inline constexpr char kCudaPluginSymbol[] = "llama_cuda_plugin_api";
inline constexpr char kCudaPluginFileName[] = "libllama_cuda.so";

struct CudaPluginApi {
  int abi_version;
  int (*device_count)();
  absl::Status (*create_from_weights)(const ModelWeights& weights, const cuda::CudaBackendOptions& options,
                                      std::unique_ptr<Backend>* backend);
  absl::Status (*create)(const cuda::CudaBackendOptions& options, std::unique_ptr<Backend>* backend);
};

// Loads the plugin once per process. FAILED_PRECONDITION when this build has no CUDA backend or the plugin (or the
// CUDA runtime it needs) cannot be loaded, with the loader's message.
absl::StatusOr<const CudaPluginApi*> LoadCudaPlugin();

// Convenience wrappers over the plugin.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackendViaPlugin(const ModelWeights& weights,
                                                                   const cuda::CudaBackendOptions& options);

}  // namespace llama
