// The public kernel entry points (matmul.h, packed_matmul.h, packed_q8.h, paged_attention.h): each forwards to the
// kernels of ActiveCpuIsa() (cpu_isa.h). The ISA-independent helpers (packing, the reference matmul) take the
// scalar build's copy.

#include "engine/cpu/cpu_isa.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/packed_q8.h"
#include "engine/cpu/paged_attention.h"

// Declarations of one ISA build's functions (the same signatures as the public headers, in namespace llama::NS).
#define LLAMA_DECLARE_ISA_KERNELS(NS)                                                                              \
  namespace llama::NS {                                                                                          \
  void MatMulRows(const float* x, const float* w, float* y, int n, int in, int out, int row_begin, int row_end,    \
                  bool accumulate);                                                                              \
  void MatMul(const float* x, const float* w, float* y, int n, int in, int out, bool accumulate, ThreadPool* pool); \
  void MatMulRowsReference(const float* x, const float* w, float* y, int n, int in, int out, int row_begin,        \
                           int row_end, bool accumulate);                                                        \
  size_t PackedSize(int out, int in);                                                                            \
  void PackWeights(const float* w, int out, int in, float* packed);                                              \
  void UnpackRow(const float* packed, int out, int in, int row, float* out_row);                                 \
  void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,      \
                        int row_end, bool accumulate);                                                           \
  size_t PanelOffset(int in, int panel);                                                                         \
  void PackPanel(const float* rows, int num_rows, int in, float* dst);                                           \
  void PackPanelBf16(const float* rows, int num_rows, int in, uint16_t* dst);                                    \
  void UnpackRowBf16(const uint16_t* packed, int out, int in, int row, float* out_row);                          \
  void PackedMatMulRowsBf16(const float* x, const uint16_t* packed, float* y, int n, int in, int out,             \
                            int row_begin, int row_end, bool accumulate);                                        \
  size_t PackedQ8Bytes(int out, int in);                                                                         \
  size_t PackedQ8PanelOffset(int out, int in, int panel);                                                        \
  void PackPanelQ8(const float* rows, int num_rows, int in, uint8_t* dst);                                       \
  void UnpackRowQ8(const uint8_t* packed, int out, int in, int row, float* out_row);                             \
  size_t QuantizedActivationBytes(int n, int in);                                                                \
  void QuantizeActivations(const float* x, int n, int in, uint8_t* xq);                                          \
  void PackedQ8MatMulRows(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out,             \
                          int row_begin, int row_end, bool accumulate);                                          \
  void PagedAttention(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch);       \
  void WriteKvCache(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads,        \
                    int head_dim, int block_size, int head_begin, int head_end, void* k_cache, void* v_cache,     \
                    KvDtype dtype);                                                                              \
  }

LLAMA_DECLARE_ISA_KERNELS(isa_scalar)
LLAMA_DECLARE_ISA_KERNELS(isa_avx2)
LLAMA_DECLARE_ISA_KERNELS(isa_avx512)

// packed_q8.cc built with AVX-512 VNNI (engine/CMakeLists.txt).
namespace llama::isa_avx512vnni {
void PackedQ8MatMulRows(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out, int row_begin,
                        int row_end, bool accumulate);
}

namespace llama {
namespace {

// Q8NS: the namespace of the q8_0 matmul (the avx512 table exists with and without VNNI).
#define LLAMA_ISA_TABLE(NS, Q8NS)                                                                                 \
  CpuKernels {                                                                                                    \
    &NS::MatMulRows, &NS::MatMul, &NS::PackedMatMulRows, &Q8NS::PackedQ8MatMulRows, &NS::QuantizeActivations,     \
        &NS::PackPanelQ8, &NS::PagedAttention, &NS::WriteKvCache, &NS::PackedMatMulRowsBf16                        \
  }

const CpuKernels kScalar = LLAMA_ISA_TABLE(isa_scalar, isa_scalar);
const CpuKernels kAvx2 = LLAMA_ISA_TABLE(isa_avx2, isa_avx2);
const CpuKernels kAvx512 = LLAMA_ISA_TABLE(isa_avx512, isa_avx512);
const CpuKernels kAvx512Vnni = LLAMA_ISA_TABLE(isa_avx512, isa_avx512vnni);

inline const CpuKernels& Active() {
  static const CpuKernels& kernels = KernelsFor(ActiveCpuIsa());
  return kernels;
}

}  // namespace

const CpuKernels& KernelsFor(CpuIsa isa, bool allow_vnni) {
  switch (isa) {
    case CpuIsa::kAvx512:
      return allow_vnni && UseAvx512Vnni() ? kAvx512Vnni : kAvx512;
    case CpuIsa::kAvx2:
      return kAvx2;
    case CpuIsa::kScalar:
      break;
  }
  return kScalar;
}

void MatMulRows(const float* x, const float* w, float* y, int n, int in, int out, int row_begin, int row_end,
                bool accumulate) {
  Active().matmul_rows(x, w, y, n, in, out, row_begin, row_end, accumulate);
}

void MatMul(const float* x, const float* w, float* y, int n, int in, int out, bool accumulate, ThreadPool* pool) {
  Active().matmul(x, w, y, n, in, out, accumulate, pool);
}

void MatMulRowsReference(const float* x, const float* w, float* y, int n, int in, int out, int row_begin,
                         int row_end, bool accumulate) {
  isa_scalar::MatMulRowsReference(x, w, y, n, in, out, row_begin, row_end, accumulate);
}

size_t PackedSize(int out, int in) { return isa_scalar::PackedSize(out, in); }

void PackWeights(const float* w, int out, int in, float* packed) { isa_scalar::PackWeights(w, out, in, packed); }

void UnpackRow(const float* packed, int out, int in, int row, float* out_row) {
  isa_scalar::UnpackRow(packed, out, in, row, out_row);
}

void PackedMatMulRows(const float* x, const float* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate) {
  Active().packed_matmul_rows(x, packed, y, n, in, out, row_begin, row_end, accumulate);
}

size_t PanelOffset(int in, int panel) { return isa_scalar::PanelOffset(in, panel); }

void PackPanel(const float* rows, int num_rows, int in, float* dst) { isa_scalar::PackPanel(rows, num_rows, in, dst); }

void PackPanelBf16(const float* rows, int num_rows, int in, uint16_t* dst) {
  isa_scalar::PackPanelBf16(rows, num_rows, in, dst);
}

void UnpackRowBf16(const uint16_t* packed, int out, int in, int row, float* out_row) {
  isa_scalar::UnpackRowBf16(packed, out, in, row, out_row);
}

void PackedMatMulRowsBf16(const float* x, const uint16_t* packed, float* y, int n, int in, int out, int row_begin,
                          int row_end, bool accumulate) {
  Active().packed_matmul_rows_bf16(x, packed, y, n, in, out, row_begin, row_end, accumulate);
}

size_t PackedQ8Bytes(int out, int in) { return isa_scalar::PackedQ8Bytes(out, in); }

size_t PackedQ8PanelOffset(int out, int in, int panel) { return isa_scalar::PackedQ8PanelOffset(out, in, panel); }

// The q8_0 quantizers run on the active ISA's build (they are exact, so every build gives the same bytes): the
// activations once per matmul input, the weights once per panel at load (7e9 values for a 7B model).
void PackPanelQ8(const float* rows, int num_rows, int in, uint8_t* dst) {
  Active().pack_panel_q8(rows, num_rows, in, dst);
}

void UnpackRowQ8(const uint8_t* packed, int out, int in, int row, float* out_row) {
  isa_scalar::UnpackRowQ8(packed, out, in, row, out_row);
}

size_t QuantizedActivationBytes(int n, int in) { return isa_scalar::QuantizedActivationBytes(n, in); }

void QuantizeActivations(const float* x, int n, int in, uint8_t* xq) {
  Active().quantize_activations(x, n, in, xq);
}

void PackedQ8MatMulRows(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out, int row_begin,
                        int row_end, bool accumulate) {
  Active().packed_q8_matmul_rows(xq, packed, y, n, in, out, row_begin, row_end, accumulate);
}

void PagedAttention(const PagedAttentionArgs& args, int64_t item_begin, int64_t item_end, float* scratch) {
  Active().paged_attention(args, item_begin, item_end, scratch);
}

void WriteKvCache(const float* k, const float* v, const int32_t* slots, int num_tokens, int num_kv_heads,
                  int head_dim, int block_size, int head_begin, int head_end, void* k_cache, void* v_cache,
                  KvDtype dtype) {
  Active().write_kv_cache(k, v, slots, num_tokens, num_kv_heads, head_dim, block_size, head_begin, head_end,
                          k_cache, v_cache, dtype);
}

}  // namespace llama
