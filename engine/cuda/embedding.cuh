// Token embedding lookup. CPU twin: the embedding row copy in the CPU backend.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "engine/cuda/dtype.h"

namespace llama::cuda {

// out[t, :] = table[token_ids[t], :] widened to fp32.
// table: [vocab, dim] in `dtype`; token_ids: [num_tokens] (device, already range-checked); out: [num_tokens, dim].
absl::Status EmbeddingLookup(const void* table, DType dtype, const int32_t* token_ids, int num_tokens, int dim,
                             float* out, cudaStream_t stream);

}  // namespace llama::cuda
