#pragma once

// Which instruction set the CPU kernels (matmul.cc, packed_matmul.cc, packed_q8.cc, paged_attention.cc) run on.
// Those files are compiled once per ISA, each time into its own namespace (llama::isa_scalar, llama::isa_avx2,
// llama::isa_avx512) with that ISA's compiler flags; everything else is built for baseline x86-64, so one binary
// runs on any x86-64 CPU. The ISA is chosen once per process, on first use (the CPU backend asks for it when it is
// created and logs it): the best the CPU supports (CPUID), unless the environment variable LLAMA_CPU_ISA names
// one (scalar, avx2, avx512) — tests and benchmarks use that to run the AVX2 path on an AVX-512 machine.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/cpu/paged_attention.h"

namespace llama {

class ThreadPool;

enum class CpuIsa { kScalar, kAvx2, kAvx512 };

const char* CpuIsaName(CpuIsa isa);
absl::StatusOr<CpuIsa> ParseCpuIsa(const std::string& name);

// True when this CPU can run `isa` (kScalar always; kAvx2 needs AVX2+FMA+F16C; kAvx512 needs AVX-512 F/BW/DQ/VL).
bool CpuSupports(CpuIsa isa);

// AVX-512 VNNI (vpdpbusd) on top of kAvx512: the avx512 kernels' q8_0 matmul (packed_q8.h) uses it when present.
bool CpuHasAvx512Vnni();

// CpuHasAvx512Vnni() unless the environment variable LLAMA_CPU_VNNI=0 (tests and benchmarks use that to run the
// AVX-512BW q8_0 path on a VNNI machine); decided once per process.
bool UseAvx512Vnni();

// The best ISA this CPU supports.
CpuIsa DetectCpuIsa();

// LLAMA_CPU_ISA if set, else DetectCpuIsa(). INVALID_ARGUMENT for an unknown name, FAILED_PRECONDITION for an
// ISA this CPU cannot run; the CPU backend's creation returns that error.
absl::StatusOr<CpuIsa> RequestedCpuIsa();

// The ISA the kernels run on in this process: RequestedCpuIsa(), decided once, on the first call (when that is an
// error, which CPU backend creation has already reported, a warning on stderr and DetectCpuIsa()).
CpuIsa ActiveCpuIsa();

// One ISA's kernels, so tests can run every path side by side in one process.
struct CpuKernels {
  void (*matmul_rows)(const float* x, const float* w, float* y, int n, int in, int out, int row_begin, int row_end,
                      bool accumulate);
  void (*matmul)(const float* x, const float* w, float* y, int n, int in, int out, bool accumulate,
                 ThreadPool* pool);
  void (*packed_matmul_rows)(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                             int row_end, bool accumulate);
  void (*packed_q8_matmul_rows)(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out,
                                int row_begin, int row_end, bool accumulate);
  void (*quantize_activations)(const float* x, int n, int in, uint8_t* xq);
  void (*pack_panel_q8)(const float* rows, int num_rows, int in, uint8_t* dst);
  void (*paged_attention)(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch);
  void (*write_kv_cache)(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads,
                         int head_dim, int block_size, int head_begin, int head_end, void* k_cache, void* v_cache,
                         KvDtype dtype);
  void (*packed_matmul_rows_bf16)(const float* x, const uint16_t* packed, float* y, int n, int in, int out,
                                  int row_begin, int row_end, bool accumulate);
};

// The kernels of `isa`; only call them when CpuSupports(isa). For kAvx512, the q8_0 matmul is the VNNI one when
// allow_vnni and UseAvx512Vnni() (tests pass false to run the AVX-512BW one too).
const CpuKernels& KernelsFor(CpuIsa isa, bool allow_vnni = true);

}  // namespace llama
