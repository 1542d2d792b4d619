// WeightMatrix: one matrix of the CPU backend in its storage type, and the one matmul entry point that switches on
// that type, so the forward pass is written once for every --weights_dtype.
//
//   f32   packed fp32 panels (packed_matmul.h), 4 bytes per weight.
//   bf16  the same panels of bf16 values, 2 bytes per weight: rounded to nearest even from fp32 at load (exact when
//         the checkpoint is bf16); the kernel widens them exactly and runs the f32 fma chain.
//   q8_0  blocks of 32 int8 values with one scale per row and block (packed_q8.h), ~1.06 bytes per weight; the
//         activations are quantized the same way, once per matmul input (QuantizeActivations), and the kernel
//         adds exact int32 block dot products scaled in fp32. Needs a multiple of 32 input columns.
//
// Every type keeps batch invariance: each output element is one fixed chain of float operations whatever the batch,
// the token tile, the row range or the ISA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llama {

enum class WeightsDtype { kF32, kBF16, kQ8_0 };

// "f32", "bf16", "q8_0".
const char* WeightsDtypeName(WeightsDtype dtype);
// INVALID_ARGUMENT naming `flag` and the allowed values for any other name.
absl::StatusOr<WeightsDtype> ParseWeightsDtype(const std::string& name, const char* flag = "--weights_dtype");

// A packed [rows, cols] matrix y = x · Wᵀ reads (rows = outputs, cols = inputs).
struct WeightMatrix {
  WeightsDtype dtype = WeightsDtype::kF32;
  const uint8_t* data = nullptr;
  int rows = 0;
  int cols = 0;
};

// OK when a [rows, cols] matrix can be stored as `dtype`; INVALID_ARGUMENT naming the tensor and its shape when not
// (q8_0 needs cols % 32 == 0).
absl::Status CheckStorable(WeightsDtype dtype, const std::string& name, int rows, int cols);

// Bytes a packed [rows, cols] matrix of `dtype` takes.
size_t WeightMatrixBytes(WeightsDtype dtype, int rows, int cols);

// Packs panel `panel` (rows [64 panel, 64 panel + num_rows) of the matrix, given in fp32 row-major as `rows`) into
// the matrix whose packing starts at `matrix`.
void PackWeightPanel(WeightsDtype dtype, const float* rows, int num_rows, int matrix_rows, int cols, int panel,
                     uint8_t* matrix);

// Row `row` in fp32 (embedding lookups).
void UnpackWeightRow(const WeightMatrix& w, int row, float* out_row);

// Activation scratch one matmul input [n, cols] needs for matrices of `dtype` (0 unless q8_0), and its
// preparation: QuantizeActivations for q8_0, nothing otherwise.
size_t ActivationScratchBytes(WeightsDtype dtype, int n, int cols);
void PrepareActivations(WeightsDtype dtype, const float* x, int n, int cols, uint8_t* xq);

// y[t, r] (+)= sum_k x[t, k] * w[r, k] for r in [row_begin, row_end), as PackedMatMulRows (packed_matmul.h).
// xq: PrepareActivations of x (read for q8_0 only).
void WeightMatMulRows(const WeightMatrix& w, const float* x, const uint8_t* xq, float* y, int n, int row_begin,
                      int row_end, bool accumulate);

}  // namespace llama
