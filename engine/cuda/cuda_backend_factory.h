// The one entry point the CLI and the server need for `--backend cuda`. Includes no CUDA headers, so callers
// compile without them; link engine_cuda and guard the call with #ifdef LLAMA_HAVE_CUDA (engine_cuda defines it
// PUBLIC).
//
//   llama::cuda::CudaBackendOptions o;
//   o.model_dir = ...;             // or o.dummy_weights = "llama-2-7b"
//   o.dtype = "bf16";              // --dtype bf16|fp16|fp32
//   ASSIGN_OR_RETURN(std::unique_ptr<llama::Backend> backend, llama::cuda::CreateCudaBackend(o));
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/model/weights.h"

namespace llama::cuda {

struct CudaBackendOptions {
  // Exactly one of these: a Hugging Face checkpoint directory, or a named shape for random weights generated on
  // the device (llama-2-7b, llama-2-13b, tiny).
  std::string model_dir;
  std::string dummy_weights;
  uint64_t dummy_seed = 0;

  std::string dtype = "bf16";            // weights and KV cache: bf16, fp16 or fp32
  // fp32 GEMMs may use TF32 tensor cores. Off by default so that --dtype fp32 really is fp32 (the parity mode).
  bool allow_tf32 = false;
  int device = 0;                        // CUDA device ordinal
  int block_size = kDefaultBlockSize;     // tokens per KV block
  int num_blocks = 0;                    // 0: sized from free memory
  // Share of the device memory still free after the weights that the KV cache takes; the rest is left for
  // per-step activations, cuBLAS workspaces and the sampler.
  double kv_cache_memory_fraction = 0.9;

  absl::Status Validate() const;
};

// Fails (never aborts) without a device, on a bad option, or when the model does not fit.
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(const CudaBackendOptions& options);

// The same from host weights the caller already loaded (options.model_dir and dummy_weights are ignored).
absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackendFromWeights(const ModelWeights& weights,
                                                                      const CudaBackendOptions& options);

// Number of visible CUDA devices; 0 when there is none or no driver (the tests skip then).
int CudaDeviceCount();

}  // namespace llama::cuda
