// The q8_0 weight kernels (engine/cpu/packed_q8.h) against references written here from the header's formula:
// the exact integer form (block sums in int32, then acc = fma(d_w · d_x, isum, acc) in block order) bit for bit on
// every ISA path this CPU can run, the dequantized sum in double within fp32 rounding, and the fp32 product within
// the quantization error.
#include "engine/cpu/packed_q8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/cpu/cpu_isa.h"
#include "gtest/gtest.h"
#include "tests/support/cpu_kernel_inputs.h"

namespace llama {
namespace {

// The Q8_0 rule, written again from the header: d = max|v| / 127, q = round(v · (1 / d)), d = 0 → q = 0.
struct Quantized {
  std::vector<float> d;   // [rows, in / 32]
  std::vector<int8_t> q;  // [rows, in]
};
Quantized Quantize(const std::vector<float>& m, int rows, int in) {
  Quantized z;
  const int blocks = in / kQ8Block;
  z.d.resize(static_cast<size_t>(rows) * blocks);
  z.q.resize(static_cast<size_t>(rows) * in);
  for (int r = 0; r < rows; ++r) {
    for (int b = 0; b < blocks; ++b) {
      const float* v = &m[static_cast<size_t>(r) * in + b * kQ8Block];
      float amax = 0.0f;
      for (int i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(v[i]));
      const float d = amax / 127.0f;
      const float id = d == 0.0f ? 0.0f : 1.0f / d;
      z.d[static_cast<size_t>(r) * blocks + b] = d;
      for (int i = 0; i < kQ8Block; ++i) {
        const float q = std::round(v[i] * id);
        EXPECT_LE(std::fabs(q), 127.0f);
        z.q[static_cast<size_t>(r) * in + b * kQ8Block + i] = static_cast<int8_t>(q);
      }
    }
  }
  return z;
}

// The header's chain, one element at a time.
std::vector<float> ExactReference(const Quantized& x, const Quantized& w, const std::vector<float>& y0, int n, int in,
                                  int out, bool accumulate) {
  const int blocks = in / kQ8Block;
  std::vector<float> y = y0;
  for (int t = 0; t < n; ++t) {
    for (int r = 0; r < out; ++r) {
      float acc = 0.0f;
      for (int b = 0; b < blocks; ++b) {
        int32_t isum = 0;
        for (int i = 0; i < kQ8Block; ++i) {
          const size_t k = b * kQ8Block + i;
          isum += int32_t{x.q[t * in + k]} * int32_t{w.q[static_cast<size_t>(r) * in + k]};
        }
        acc = std::fma(x.d[t * blocks + b] * w.d[r * blocks + b], static_cast<float>(isum), acc);
      }
      float& dst = y[static_cast<size_t>(t) * out + r];
      dst = accumulate ? dst + acc : acc;
    }
  }
  return y;
}

std::vector<uint8_t> Pack(const std::vector<float>& w, int out, int in) {
  std::vector<uint8_t> packed(PackedQ8Bytes(out, in));
  for (int p = 0; p * kPanelRows < out; ++p) {
    const int rows = std::min(kPanelRows, out - p * kPanelRows);
    PackPanelQ8(&w[static_cast<size_t>(p) * kPanelRows * in], rows, in,
                packed.data() + PackedQ8PanelOffset(out, in, p));
  }
  return packed;
}

std::vector<uint8_t> QuantizeX(const std::vector<float>& x, int n, int in) {
  std::vector<uint8_t> xq(QuantizedActivationBytes(n, in));
  QuantizeActivations(x.data(), n, in, xq.data());
  return xq;
}

using Q8Fn = void (*)(const uint8_t* xq, const uint8_t* packed, float* y, int n, int in, int out, int row_begin,
                      int row_end, bool accumulate);
struct Path {
  std::string name;
  Q8Fn fn;
};

// Every path this CPU can run (AVX-512 with and without VNNI), and the public entry point (the active ISA).
std::vector<Path> Paths() {
  std::vector<Path> paths;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (CpuSupports(isa)) paths.push_back({CpuIsaName(isa), KernelsFor(isa, false).packed_q8_matmul_rows});
  }
  if (UseAvx512Vnni()) {
    paths.push_back({"avx512vnni", KernelsFor(CpuIsa::kAvx512, true).packed_q8_matmul_rows});
  }
  paths.push_back({"active", &PackedQ8MatMulRows});
  return paths;
}

// Random weights with an all-zero row (3), an all-zero block (row 5, block 1 when it exists) and one huge value.
std::vector<float> Weights(int out, int in, std::mt19937* rng) {
  std::vector<float> w = Random(static_cast<size_t>(out) * in, rng);
  if (out > 3) std::fill_n(&w[3 * in], in, 0.0f);
  if (out > 5 && in >= 64) std::fill_n(&w[5 * in + 32], 32, 0.0f);
  w[in / 2] = 40.0f;
  return w;
}

TEST(PackedQ8Test, SizesAndOffsets) {
  // 36 bytes per 32 weights of each 16-row vector; panels of 4 vectors.
  EXPECT_EQ(PackedQ8Bytes(64, 32), 64u * 36);
  EXPECT_EQ(PackedQ8Bytes(65, 64), 80u * 2 * 36);
  EXPECT_EQ(PackedQ8PanelOffset(200, 96, 0), 0u);
  EXPECT_EQ(PackedQ8PanelOffset(200, 96, 2), 2u * 64 * 3 * 36);
  EXPECT_EQ(QuantizedActivationBytes(3, 96), 3u * (96 + 3 * 4));
}

// Packing writes every byte of its panel (padding too) and nothing past PackedQ8Bytes, the same on every ISA.
TEST(PackedQ8Test, PackingWritesExactlyItsBytes) {
  std::mt19937 rng(1);
  for (int out : {1, 37, 64, 100, 200}) {
    const int in = 96;
    const auto w = Weights(out, in, &rng);
    const size_t bytes = PackedQ8Bytes(out, in);
    std::vector<uint8_t> a(bytes + 64, 0xAB), b(bytes + 64, 0x5C);
    for (int p = 0; p * kPanelRows < out; ++p) {
      const int rows = std::min(kPanelRows, out - p * kPanelRows);
      PackPanelQ8(&w[static_cast<size_t>(p) * kPanelRows * in], rows, in, a.data() + PackedQ8PanelOffset(out, in, p));
      PackPanelQ8(&w[static_cast<size_t>(p) * kPanelRows * in], rows, in, b.data() + PackedQ8PanelOffset(out, in, p));
    }
    EXPECT_EQ(std::memcmp(a.data(), b.data(), bytes), 0) << out;
    for (size_t i = bytes; i < a.size(); ++i) {
      ASSERT_EQ(a[i], 0xAB) << out;
      ASSERT_EQ(b[i], 0x5C) << out;
    }
    // Every ISA's packer writes the same bytes.
    for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
      if (!CpuSupports(isa)) continue;
      std::vector<uint8_t> c(bytes);
      for (int p = 0; p * kPanelRows < out; ++p) {
        KernelsFor(isa).pack_panel_q8(&w[static_cast<size_t>(p) * kPanelRows * in],
                                      std::min(kPanelRows, out - p * kPanelRows), in,
                                      c.data() + PackedQ8PanelOffset(out, in, p));
      }
      EXPECT_EQ(std::memcmp(a.data(), c.data(), bytes), 0) << CpuIsaName(isa) << " out=" << out;
    }
  }
}

// UnpackRowQ8 is d · q of the rule, and within half a step of the original (d = 0 blocks give exact zeros).
TEST(PackedQ8Test, UnpackRowRoundTrips) {
  std::mt19937 rng(2);
  for (int out : {5, 64, 100, 200}) {
    for (int in : {32, 96, 288}) {
      const auto w = Weights(out, in, &rng);
      const auto packed = Pack(w, out, in);
      const Quantized z = Quantize(w, out, in);
      std::vector<float> row(in);
      for (int r = 0; r < out; ++r) {
        UnpackRowQ8(packed.data(), out, in, r, row.data());
        for (int k = 0; k < in; ++k) {
          const size_t i = static_cast<size_t>(r) * in + k;
          const float d = z.d[i / kQ8Block];
          ASSERT_EQ(row[k], d * static_cast<float>(z.q[i]))
              << "out=" << out << " in=" << in << " r=" << r << " k=" << k;
          ASSERT_LE(std::fabs(w[i] - row[k]), 0.5f * d * (1.0f + 1e-5f)) << r << " " << k;
          ASSERT_TRUE(std::isfinite(row[k]));
        }
      }
      if (out > 3) {
        UnpackRowQ8(packed.data(), out, in, 3, row.data());
        for (float v : row) EXPECT_EQ(v, 0.0f);
      }
    }
  }
}

// Halves round away from zero (roundf), on every ISA's activation quantizer, and all give the same bytes.
TEST(PackedQ8Test, QuantizationRoundsHalvesAwayFromZeroOnEveryPath) {
  // amax 127 → d = 1, so q = round(v) and the dequantized row is q.
  std::vector<float> w(kQ8Block, 0.0f);
  const float v[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 126.5f, -126.5f, 0.49999997f, -1.5f, 3.4999998f};
  const float q[] = {127.0f, 3.0f, -3.0f, 1.0f, -1.0f, 127.0f, -127.0f, 0.0f, -2.0f, 3.0f};
  std::copy(std::begin(v), std::end(v), w.begin());
  const auto packed = Pack(w, 1, kQ8Block);
  std::vector<float> row(kQ8Block);
  UnpackRowQ8(packed.data(), 1, kQ8Block, 0, row.data());
  for (size_t i = 0; i < std::size(q); ++i) EXPECT_EQ(row[i], q[i]) << v[i];

  std::mt19937 rng(7);
  const int n = 5, in = 288;
  auto x = Random(static_cast<size_t>(n) * in, &rng);
  std::copy(w.begin(), w.end(), x.begin());
  const auto want = QuantizeX(x, n, in);
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!CpuSupports(isa)) continue;
    std::vector<uint8_t> got(want.size());
    KernelsFor(isa).quantize_activations(x.data(), n, in, got.data());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size()), 0) << CpuIsaName(isa);
  }
  for (size_t i = 0; i < std::size(q); ++i) EXPECT_EQ(static_cast<int8_t>(want[i]), q[i]) << v[i];
}

TEST(PackedQ8Test, EveryPathEqualsTheExactFormulaBitForBit) {
  std::mt19937 rng(3);
  const struct {
    int out, in;
  // {272, 1024}: 4 full panels + a 1-vector one, 32 blocks, the shape class of the single-token AVX2 pass.
  } shapes[] = {{1, 32}, {16, 32}, {64, 32}, {37, 128}, {100, 64}, {130, 256}, {200, 96}, {288, 288}, {272, 1024}};
  for (const auto& s : shapes) {
    const auto w = Weights(s.out, s.in, &rng);
    const auto packed = Pack(w, s.out, s.in);
    const Quantized wz = Quantize(w, s.out, s.in);
    for (int n : {1, 5, 7, 13}) {
      auto x = Random(static_cast<size_t>(n) * s.in, &rng);
      if (n > 1) std::fill_n(&x[s.in], s.in, 0.0f);  // a zero token: every block d = 0
      std::fill_n(&x[0], kQ8Block, 0.0f);            // and a zero block
      const auto xq = QuantizeX(x, n, s.in);
      const Quantized xz = Quantize(x, n, s.in);
      const auto y0 = Random(static_cast<size_t>(n) * s.out, &rng);
      for (bool acc : {false, true}) {
        const auto want = ExactReference(xz, wz, y0, n, s.in, s.out, acc);
        for (const Path& path : Paths()) {
          std::vector<float> got = y0;
          path.fn(xq.data(), packed.data(), got.data(), n, s.in, s.out, 0, s.out, acc);
          ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
              << path.name << " out=" << s.out << " in=" << s.in << " n=" << n << " acc=" << acc;
        }
      }
      // The zero row gives exact zeros.
      if (s.out > 3) {
        std::vector<float> got(static_cast<size_t>(n) * s.out, 1.0f);
        PackedQ8MatMulRows(xq.data(), packed.data(), got.data(), n, s.in, s.out, 0, s.out, false);
        for (int t = 0; t < n; ++t) EXPECT_EQ(got[static_cast<size_t>(t) * s.out + 3], 0.0f);
        for (float v : got) ASSERT_TRUE(std::isfinite(v));
      }
    }
  }
}

// Blocks of equal magnitudes quantize to ±127 everywhere: the largest products (a maddubs pair sum of 2 · 127²
// must not saturate, the sign trick must hold for negative x and w).
TEST(PackedQ8Test, ExtremeValuesAreExact) {
  const int out = 64, in = 64, n = 3;
  std::vector<float> w(out * in), x(n * in);
  for (int r = 0; r < out; ++r)
    for (int k = 0; k < in; ++k) w[r * in + k] = ((r + k / 4) % 3 == 0 ? -1.0f : 1.0f) * (r + 1);
  for (int t = 0; t < n; ++t)
    for (int k = 0; k < in; ++k) x[t * in + k] = t == 0 ? 2.0f : ((k + t) % 2 ? -3.0f : 3.0f);
  const auto packed = Pack(w, out, in);
  const auto xq = QuantizeX(x, n, in);
  const auto want =
      ExactReference(Quantize(x, n, in), Quantize(w, out, in), std::vector<float>(n * out), n, in, out, false);
  for (const Path& path : Paths()) {
    std::vector<float> got(n * out);
    path.fn(xq.data(), packed.data(), got.data(), n, in, out, 0, out, false);
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << path.name;
  }
  // Token 0 (all 127) against row 0 (-127 where k / 4 % 3 == 0): the exact value of the chain.
  EXPECT_FLOAT_EQ(want[0], 2.0f / 127 * 1.0f / 127 * 127 * 127 * (64 - 2 * 24));
}

// Against the dequantized weights and activations summed in double: the fp32 chain's rounding only. Against the
// unquantized fp32 product: the quantization error, each value off by at most d/2 (~1% of the block's max).
TEST(PackedQ8Test, AgreesWithDequantizedAndFloatProducts) {
  std::mt19937 rng(4);
  const int out = 200, in = 288, n = 5;
  const auto w = Random(static_cast<size_t>(out) * in, &rng), x = Random(static_cast<size_t>(n) * in, &rng);
  const auto packed = Pack(w, out, in);
  const auto xq = QuantizeX(x, n, in);
  const Quantized wz = Quantize(w, out, in), xz = Quantize(x, n, in);
  std::vector<float> y(static_cast<size_t>(n) * out);
  PackedQ8MatMulRows(xq.data(), packed.data(), y.data(), n, in, out, 0, out, false);
  const int blocks = in / kQ8Block;
  for (int t = 0; t < n; ++t) {
    for (int r = 0; r < out; ++r) {
      double deq = 0.0, abs_sum = 0.0, f32 = 0.0;
      for (int k = 0; k < in; ++k) {
        const double term = double{xz.d[t * blocks + k / kQ8Block]} * xz.q[t * in + k] *
                            double{wz.d[r * blocks + k / kQ8Block]} * wz.q[r * in + k];
        deq += term;
        abs_sum += std::fabs(term);
        f32 += double{x[t * in + k]} * w[r * in + k];
      }
      const float got = y[static_cast<size_t>(t) * out + r];
      // Each of the blocks + 1 roundings (the scale product, the fma) is within 2^-24 of a partial sum <= abs_sum.
      EXPECT_NEAR(got, deq, (blocks + 2) * 0x1p-24 * abs_sum) << t << " " << r;
      // Error std ~ sqrt(2 in) · d / sqrt(12) with d ~ 3/127: < 0.006 sqrt(in); 0.05 sqrt(in) is > 8 sigma.
      EXPECT_NEAR(got, f32, 0.05 * std::sqrt(in)) << t << " " << r;
    }
  }
}

// Partial row ranges: the rows in range equal the full product, the others are left alone (16-row vectors that
// straddle the ends are stored in part).
TEST(PackedQ8Test, RowRangesStoreOnlyTheirRows) {
  std::mt19937 rng(5);
  const int out = 200, in = 96;
  const auto w = Weights(out, in, &rng);
  const auto packed = Pack(w, out, in);
  for (int n : {1, 7}) {
    const auto xq = QuantizeX(Random(static_cast<size_t>(n) * in, &rng), n, in);
    const auto y0 = Random(static_cast<size_t>(n) * out, &rng);
    for (bool acc : {false, true}) {
      std::vector<float> full = y0;
      KernelsFor(CpuIsa::kScalar).packed_q8_matmul_rows(xq.data(), packed.data(), full.data(), n, in, out, 0, out, acc);
      const struct {
        int begin, end;
      } ranges[] = {{0, 64}, {16, 80}, {64, 200}, {5, 197}, {100, 101}, {192, 200}, {70, 70}};
      for (const auto& range : ranges) {
        for (const Path& path : Paths()) {
          std::vector<float> got = y0;
          path.fn(xq.data(), packed.data(), got.data(), n, in, out, range.begin, range.end, acc);
          for (int t = 0; t < n; ++t) {
            for (int r = 0; r < out; ++r) {
              const size_t i = static_cast<size_t>(t) * out + r;
              const float want = r >= range.begin && r < range.end ? full[i] : y0[i];
              ASSERT_EQ(std::memcmp(&got[i], &want, sizeof(float)), 0)
                  << path.name << " [" << range.begin << ", " << range.end << ") t=" << t << " r=" << r;
            }
          }
        }
      }
    }
  }
}

// Row t of a batch equals the same token alone, bit for bit, whatever the batch size (tiles of 4 tokens split 13
// as 4 + 3 + 3 + 3).
TEST(PackedQ8Test, BatchInvariance) {
  std::mt19937 rng(6);
  const int out = 288, in = 288;
  const auto packed = Pack(Weights(out, in, &rng), out, in);
  for (int n : {2, 5, 13}) {
    const auto x = Random(static_cast<size_t>(n) * in, &rng);
    const auto xq = QuantizeX(x, n, in);
    for (const Path& path : Paths()) {
      std::vector<float> batch(static_cast<size_t>(n) * out);
      path.fn(xq.data(), packed.data(), batch.data(), n, in, out, 0, out, false);
      for (int t = 0; t < n; ++t) {
        const auto one = QuantizeX(std::vector<float>(x.begin() + t * in, x.begin() + (t + 1) * in), 1, in);
        std::vector<float> alone(out);
        path.fn(one.data(), packed.data(), alone.data(), 1, in, out, 0, out, false);
        ASSERT_EQ(std::memcmp(alone.data(), &batch[static_cast<size_t>(t) * out], out * sizeof(float)), 0)
            << path.name << " n=" << n << " t=" << t;
      }
    }
  }
}

}  // namespace
}  // namespace llama
