// --backend cpu|cuda and --dtype for llama-chat subcommands: one place that builds the chosen Backend, so each
// subcommand needs two lines. CUDA comes from the run-time plugin (engine/cuda_plugin.h); without it --backend cuda
// is FAILED_PRECONDITION.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/model/weights.h"

namespace llama::cli {

// backend: "cpu" or "cuda". dtype: the CUDA weights/KV type (bf16, fp16, fp32; ignored for cpu).
// cpu_options apply to the CPU backend; the CUDA backend takes their block_size and num_blocks.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& backend, const std::string& dtype,
                                                       ModelWeights weights, const CpuBackendOptions& cpu_options);

// Threads of a CPU backend, 0 for any other (for reports).
int BackendThreads(const Backend& backend);

}  // namespace llama::cli
