// MatMul: the CPU backend's GEMM/GEMV, y = x · Wᵀ for a batch of n tokens.
//
// Weights are row-major [out, in] (the Hugging Face Linear layout), activations [n, in]. The kernel tiles
// 4 weight rows × 4 tokens in registers, so a batch of n tokens reads each weight row from memory once (the row
// tile stays in L1 while every token tile passes over it). AVX-512 or AVX2 FMA when compiled for them, a scalar
// loop otherwise. This is also the CPU twin the CUDA GEMMs are tested against.
#pragma once

#include <cstdint>

namespace llama {

class ThreadPool;

// y[t, r] (+)= sum_k x[t, k] * w[r, k] for tokens t in [0, n) and weight rows r in [row_begin, row_end).
//   x: [n, in]   w: [out, in]   y: [n, out]
// With accumulate the product is added to y (residual connections), otherwise it overwrites y.
void MatMulRows(const float* x, const float* w, float* y, int n, int in, int out, int row_begin, int row_end,
                bool accumulate);

// The same over all rows, split across the pool's threads by rows (pool may be null: single-threaded).
void MatMul(const float* x, const float* w, float* y, int n, int in, int out, bool accumulate, ThreadPool* pool);

// Scalar reference of MatMulRows (tests compare the vector kernels against it).
void MatMulRowsReference(const float* x, const float* w, float* y, int n, int in, int out, int row_begin,
                         int row_end, bool accumulate);

}  // namespace llama
