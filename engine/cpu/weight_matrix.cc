#include "engine/cpu/weight_matrix.h"

#include "absl/strings/str_cat.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/packed_q8.h"

namespace llama {
const char* WeightsDtypeName(WeightsDtype dtype) {
  switch (dtype) {
    case WeightsDtype::kF32: return "f32";
    case WeightsDtype::kBF16: return "bf16";
    case WeightsDtype::kQ8_0: return "q8_0";
  }
  return "?";
}

absl::StatusOr<WeightsDtype> ParseWeightsDtype(const std::string& name, const char* flag) {
  for (WeightsDtype d : {WeightsDtype::kF32, WeightsDtype::kBF16, WeightsDtype::kQ8_0}) {
    if (name == WeightsDtypeName(d)) return d;
  }
  return absl::InvalidArgumentError(absl::StrCat(flag, ": unknown '", name, "' (f32, bf16, q8_0)"));
}

absl::Status CheckStorable(WeightsDtype dtype, const std::string& name, int rows, int cols) {
  if (dtype == WeightsDtype::kQ8_0 && cols % kQ8Block != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape [", rows, ", ", cols,
                                                   "]: q8_0 weights need a multiple of 32 columns"));
  }
  return absl::OkStatus();
}

size_t WeightMatrixBytes(WeightsDtype dtype, int rows, int cols) {
  switch (dtype) {
    case WeightsDtype::kF32: return PackedSize(rows, cols) * sizeof(float);
    case WeightsDtype::kBF16: return PackedSize(rows, cols) * sizeof(uint16_t);
    case WeightsDtype::kQ8_0: break;
  }
  return PackedQ8Bytes(rows, cols);
}

void PackWeightPanel(WeightsDtype dtype, const float* rows, int num_rows, int matrix_rows, int cols, int panel,
                     uint8_t* matrix) {
  switch (dtype) {
    case WeightsDtype::kF32:
      PackPanel(rows, num_rows, cols, reinterpret_cast<float*>(matrix) + PanelOffset(cols, panel));
      return;
    case WeightsDtype::kBF16:
      PackPanelBf16(rows, num_rows, cols, reinterpret_cast<uint16_t*>(matrix) + PanelOffset(cols, panel));
      return;
    case WeightsDtype::kQ8_0: break;
  }
  PackPanelQ8(rows, num_rows, cols, matrix + PackedQ8PanelOffset(matrix_rows, cols, panel));
}

void UnpackWeightRow(const WeightMatrix& w, int row, float* out_row) {
  switch (w.dtype) {
    case WeightsDtype::kF32:
      UnpackRow(reinterpret_cast<const float*>(w.data), w.rows, w.cols, row, out_row);
      return;
    case WeightsDtype::kBF16:
      UnpackRowBf16(reinterpret_cast<const uint16_t*>(w.data), w.rows, w.cols, row, out_row);
      return;
    case WeightsDtype::kQ8_0: break;
  }
  UnpackRowQ8(w.data, w.rows, w.cols, row, out_row);
}

size_t ActivationScratchBytes(WeightsDtype dtype, int n, int cols) {
  return dtype == WeightsDtype::kQ8_0 ? QuantizedActivationBytes(n, cols) : 0;
}

void PrepareActivations(WeightsDtype dtype, const float* x, int n, int cols, uint8_t* xq) {
  if (dtype == WeightsDtype::kQ8_0) QuantizeActivations(x, n, cols, xq);
}

void WeightMatMulRows(const WeightMatrix& w, const float* x, const uint8_t* xq, float* y, int n, int row_begin,
                      int row_end, bool accumulate) {
  switch (w.dtype) {
    case WeightsDtype::kF32:
      PackedMatMulRows(x, reinterpret_cast<const float*>(w.data), y, n, w.cols, w.rows, row_begin, row_end,
                       accumulate);
      return;
    case WeightsDtype::kBF16:
      PackedMatMulRowsBf16(x, reinterpret_cast<const uint16_t*>(w.data), y, n, w.cols, w.rows, row_begin, row_end,
                           accumulate);
      return;
    case WeightsDtype::kQ8_0: break;
  }
  PackedQ8MatMulRows(xq, w.data, y, n, w.cols, w.rows, row_begin, row_end, accumulate);
}

}  // namespace llama
