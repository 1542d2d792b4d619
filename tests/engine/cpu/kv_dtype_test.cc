// The half-precision KV cache's element types (engine/cpu/kv_dtype.h) and the kernels that write and read them
// (engine/cpu/paged_attention.h), on every ISA path this CPU can run, side by side in one process.
//
// The conversions are checked against a reference built independently of their bit tricks: every finite f16
// (bf16) value as a double, sorted, with the first value past the largest finite one standing for infinity; the
// reference rounding of x is the nearest of them, a tie going to the even encoding. That is IEEE round to nearest
// even, overflow included (x at or past halfway to 2^16, resp. 2^128, rounds to inf).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/cpu/cpu_isa.h"
#include "engine/cpu/kv_dtype.h"
#include "engine/cpu/paged_attention.h"
#include "gtest/gtest.h"
#include "tests/support/cpu_kernel_inputs.h"

namespace llama {
namespace {

uint32_t Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

float FromBits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

// The value of a non-NaN binary16 from its fields, by the format's definition (not by bit placement).
double F16Value(uint16_t h) {
  const int exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 0x1F) return sign * std::numeric_limits<double>::infinity();
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

// Non-negative finite encodings of a format, ascending, plus the stand-in for infinity (its value is the next
// binade's first value, so a tie with the largest finite value goes to infinity's even encoding, as IEEE says).
struct Grid {
  std::vector<std::pair<double, uint16_t>> points;

  uint16_t Round(float x) const {
    const double a = std::fabs(static_cast<double>(x));
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    if (std::isinf(a)) return sign | points.back().second;
    auto hi = std::lower_bound(points.begin(), points.end(), std::make_pair(a, uint16_t{0}));
    if (hi == points.end()) return sign | points.back().second;
    if (hi->first == a || hi == points.begin()) return sign | hi->second;
    auto lo = hi - 1;
    const double dlo = a - lo->first, dhi = hi->first - a;
    if (dlo < dhi) return sign | lo->second;
    if (dhi < dlo) return sign | hi->second;
    return sign | ((lo->second & 1) == 0 ? lo->second : hi->second);
  }
};

Grid F16Grid() {
  Grid g;
  for (uint32_t h = 0; h < 0x7C00; ++h) g.points.push_back({F16Value(static_cast<uint16_t>(h)), h});
  g.points.push_back({65536.0, 0x7C00});
  return g;
}

Grid Bf16Grid() {
  Grid g;
  for (uint32_t b = 0; b < 0x7F80; ++b) g.points.push_back({static_cast<double>(FromBits(b << 16)), b});
  g.points.push_back({std::ldexp(1.0, 128), 0x7F80});
  return g;
}

// Inputs that exercise the rounding: exact ties between neighbours and one ulp either side of them, the overflow
// threshold, subnormal results, zeros and infinities, plus random floats over the whole exponent range.
std::vector<float> Probes(const Grid& grid, std::mt19937* rng) {
  std::vector<float> xs;
  for (size_t i = 0; i + 1 < grid.points.size(); i += 7) {
    const double mid = (grid.points[i].first + grid.points[i + 1].first) / 2;
    const float m = static_cast<float>(mid);
    if (static_cast<double>(m) != mid) continue;  // not representable in fp32 (never for these formats)
    for (float x : {m, std::nextafter(m, 0.0f), std::nextafter(m, INFINITY)}) {
      xs.push_back(x);
      xs.push_back(-x);
    }
  }
  for (float x : {0.0f, -0.0f, INFINITY, -INFINITY, 65504.0f, 65519.996f, 65520.0f, 65536.0f, 1e-8f, 2.98e-8f,
                  5.96e-8f, 6.1e-5f, 3.0e38f, 3.4028235e38f, 1e-40f, -1e-45f}) {
    xs.push_back(x);
  }
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 20000; ++i) {
    const float x = FromBits(bits(*rng));
    if (!std::isnan(x)) xs.push_back(x);
  }
  return xs;
}

TEST(KvDtypeTest, NamesParseAndBadNamesNameTheFlag) {
  for (KvDtype d : {KvDtype::kF32, KvDtype::kF16, KvDtype::kBf16}) {
    auto parsed = ParseKvDtype(KvDtypeName(d));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_EQ(KvDtypeBytes(KvDtype::kF32), 4);
  EXPECT_EQ(KvDtypeBytes(KvDtype::kF16), 2);
  EXPECT_EQ(KvDtypeBytes(KvDtype::kBf16), 2);
  auto bad = ParseKvDtype("fp8");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* word : {"--kv_dtype", "f32", "f16", "bf16", "'fp8'"}) {
    EXPECT_NE(bad.status().message().find(word), std::string::npos) << bad.status();
  }
}

// Every half widens to its defined value and narrows back to itself; NaNs stay NaN (quiet, sign kept).
TEST(KvDtypeTest, EveryF16ValueRoundTrips) {
  for (uint32_t i = 0; i <= 0xFFFF; ++i) {
    const uint16_t h = static_cast<uint16_t>(i);
    const float f = F16ToFloat(h);
    const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
      EXPECT_EQ(FloatToF16(f), h | 0x200) << std::hex << h;  // quiet bit set, payload kept
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), F16Value(h)) << std::hex << h;
    ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
    ASSERT_EQ(FloatToF16(f), h) << std::hex << h;
  }
}

TEST(KvDtypeTest, EveryBf16ValueRoundTrips) {
  for (uint32_t i = 0; i <= 0xFFFF; ++i) {
    const uint16_t b = static_cast<uint16_t>(i);
    const float f = Bf16ToFloat(b);
    ASSERT_EQ(Bits(f), i << 16);
    if (std::isnan(f)) {
      EXPECT_EQ(FloatToBf16(f), b | 0x40) << std::hex << b;
    } else {
      EXPECT_EQ(FloatToBf16(f), b) << std::hex << b;
    }
  }
}

TEST(KvDtypeTest, FloatToF16RoundsToNearestEven) {
  const Grid grid = F16Grid();
  std::mt19937 rng(1);
  for (float x : Probes(grid, &rng)) {
    ASSERT_EQ(FloatToF16(x), grid.Round(x)) << x << " bits " << std::hex << Bits(x);
  }
  // The named cases: ties to even in the normal and subnormal range, overflow, the smallest subnormal.
  EXPECT_EQ(FloatToF16(1.0f + 0x1p-11f), 0x3C00);       // halfway 1 → 1+2^-10: even (1)
  EXPECT_EQ(FloatToF16(1.0f + 3 * 0x1p-11f), 0x3C02);   // halfway 1+2^-10 → 1+2^-9: even (1+2^-9)
  EXPECT_EQ(FloatToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToF16(65519.996f), 0x7BFF);
  EXPECT_EQ(FloatToF16(65520.0f), 0x7C00);              // halfway to 2^16: inf
  EXPECT_EQ(FloatToF16(-1e9f), 0xFC00);
  EXPECT_EQ(FloatToF16(0x1p-24f), 0x0001);              // the smallest subnormal
  EXPECT_EQ(FloatToF16(0x1p-25f), 0x0000);              // halfway 0 → 2^-24: even (0)
  EXPECT_EQ(FloatToF16(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(FloatToF16(3 * 0x1p-25f), 0x0002);          // halfway 2^-24 → 2^-23: even (2)
  EXPECT_EQ(FloatToF16(-0.0f), 0x8000);
  EXPECT_EQ(FloatToF16(0x1p-14f - 0x1p-25f), 0x0400);   // rounds up out of the subnormals to the smallest normal
}

TEST(KvDtypeTest, FloatToBf16RoundsToNearestEvenAndKeepsNaN) {
  const Grid grid = Bf16Grid();
  std::mt19937 rng(2);
  for (float x : Probes(grid, &rng)) {
    ASSERT_EQ(FloatToBf16(x), grid.Round(x)) << x << " bits " << std::hex << Bits(x);
  }
  EXPECT_EQ(FloatToBf16(1.0f + 0x1p-8f), 0x3F80);              // halfway: even (1)
  EXPECT_EQ(FloatToBf16(1.0f + 3 * 0x1p-8f), 0x3F82);          // halfway: even
  EXPECT_EQ(FloatToBf16(3.4028235e38f), 0x7F80);               // past halfway above the largest finite: inf
  EXPECT_EQ(FloatToBf16(FromBits(0x00010000)), 0x0001);        // subnormals are kept, not flushed
  // NaN stays NaN whatever its payload (a signaling NaN with only low payload bits would truncate to inf).
  for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFC12345u}) {
    const uint16_t b = FloatToBf16(FromBits(nan));
    EXPECT_TRUE(std::isnan(Bf16ToFloat(b))) << std::hex << nan;
    EXPECT_EQ(b & 0x8000, (nan >> 16) & 0x8000);
    const uint16_t h = FloatToF16(FromBits(nan));
    EXPECT_TRUE(std::isnan(F16ToFloat(h))) << std::hex << nan;
    EXPECT_EQ(h & 0x8000, (nan >> 16) & 0x8000);
  }
}

// WriteKvCache on every ISA path gives the bits of the scalar conversions (F16C's vcvtps2ph and the AVX2/AVX-512
// integer bf16 rounding against FloatToF16 / FloatToBf16), for the probes above, NaNs and row tails included.
TEST(KvDtypeTest, KvWriteIsBitIdenticalOnEveryPath) {
  std::mt19937 rng(3);
  std::vector<float> values = Probes(F16Grid(), &rng);
  for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFC12345u}) {
    values.push_back(FromBits(nan));
  }
  std::shuffle(values.begin(), values.end(), rng);
  for (int hd : {8, 13, 72}) {
    const int nkv = 2, bs = 4;
    const int tokens = static_cast<int>(values.size()) / (2 * nkv * hd);
    const int num_blocks = (tokens + bs - 1) / bs;
    const float* k = values.data();
    const float* v = values.data() + static_cast<size_t>(tokens) * nkv * hd;
    std::vector<int32_t> slots(tokens);
    for (int t = 0; t < tokens; ++t) slots[t] = (t * 7) % (num_blocks * bs);  // scattered, distinct
    for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
      const size_t elems = static_cast<size_t>(num_blocks) * nkv * bs * hd;
      std::vector<uint16_t> want_k(elems), want_v(elems);
      KernelsFor(CpuIsa::kScalar)
          .write_kv_cache(k, v, slots.data(), tokens, nkv, hd, bs, 0, nkv, want_k.data(), want_v.data(), d);
      // The scalar path stores exactly the scalar conversion of each value.
      for (int t = 0; t < tokens; ++t) {
        const int64_t block = slots[t] / bs, off = slots[t] % bs;
        for (int h = 0; h < nkv; ++h) {
          for (int i = 0; i < hd; ++i) {
            const float x = k[(t * nkv + h) * hd + i];
            const uint16_t want = d == KvDtype::kF16 ? FloatToF16(x) : FloatToBf16(x);
            ASSERT_EQ(want_k[((block * nkv + h) * bs + off) * hd + i], want);
          }
        }
      }
      for (CpuIsa isa : SupportedIsas()) {
        std::vector<uint16_t> got_k(elems), got_v(elems);
        KernelsFor(isa).write_kv_cache(k, v, slots.data(), tokens, nkv, hd, bs, 0, nkv, got_k.data(), got_v.data(),
                                       d);
        EXPECT_EQ(got_k, want_k) << CpuIsaName(isa) << " " << KvDtypeName(d) << " hd=" << hd;
        EXPECT_EQ(got_v, want_v) << CpuIsaName(isa) << " " << KvDtypeName(d) << " hd=" << hd;
      }
    }
  }
}

// A random paged cache: two sequences in shuffled blocks, GQA 8 query heads over 2 KV heads, a prefill chunk and
// decode queries (partial last blocks), written once as fp32 and once as each half type.
struct AttentionCase {
  int hd, nh = 8, nkv = 2, bs = 16, max_blocks = 5;
  std::vector<int32_t> tables = {3, 7, 0, 9, 5, 2, 8, 1, 6, 4};
  std::vector<int32_t> token_seq = {0, 0, 0, 1, 1};
  std::vector<int32_t> positions = {61, 62, 63, 40, 78};  // seq 0: 64 tokens; seq 1: 79 tokens
  std::vector<float> q, k_f32, v_f32;                      // caches [10 blocks, nkv, bs, hd]
  std::vector<uint16_t> k_half, v_half;

  AttentionCase(int head_dim, KvDtype d, std::mt19937* rng) : hd(head_dim) {
    std::normal_distribution<float> n(0.0f, 1.0f);
    const size_t elems = static_cast<size_t>(10) * nkv * bs * hd;
    k_f32.resize(elems);
    v_f32.resize(elems);
    std::vector<float> k(79 * nkv * hd), v(k.size());
    for (int s = 0; s < 2; ++s) {
      const int len = s == 0 ? 64 : 79;
      for (float& x : k) x = n(*rng);
      for (float& x : v) x = n(*rng);
      std::vector<int32_t> slots(len);
      for (int p = 0; p < len; ++p) slots[p] = tables[s * max_blocks + p / bs] * bs + p % bs;
      KernelsFor(CpuIsa::kScalar)
          .write_kv_cache(k.data(), v.data(), slots.data(), len, nkv, hd, bs, 0, nkv, k_f32.data(), v_f32.data(),
                          KvDtype::kF32);
    }
    k_half.resize(elems);
    v_half.resize(elems);
    for (size_t i = 0; i < elems; ++i) {
      k_half[i] = d == KvDtype::kF16 ? FloatToF16(k_f32[i]) : FloatToBf16(k_f32[i]);
      v_half[i] = d == KvDtype::kF16 ? FloatToF16(v_f32[i]) : FloatToBf16(v_f32[i]);
    }
    q.resize(token_seq.size() * nh * hd);
    for (float& x : q) x = n(*rng);
  }

  PagedAttentionArgs Args(const void* k, const void* v, KvDtype d, float* out) const {
    PagedAttentionArgs a;
    a.q = q.data();
    a.k_cache = k;
    a.v_cache = v;
    a.block_tables = tables.data();
    a.token_seq = token_seq.data();
    a.positions = positions.data();
    a.out = out;
    a.num_tokens = static_cast<int>(token_seq.size());
    a.num_heads = nh;
    a.num_kv_heads = nkv;
    a.head_dim = hd;
    a.block_size = bs;
    a.max_blocks_per_seq = max_blocks;
    a.kv_dtype = d;
    return a;
  }

  std::vector<float> Run(CpuIsa isa, const void* k, const void* v, KvDtype d) const {
    std::vector<float> out(q.size()), scratch(80);
    KernelsFor(isa).paged_attention(Args(k, v, d, out.data()), 0, static_cast<int64_t>(token_seq.size()) * nh,
                                    scratch.data());
    return out;
  }
};

// Attention widens exactly and then does the fp32 math of the fp32 cache: over a half cache it equals, bit for
// bit on each ISA path, attention over an fp32 cache that holds the widened values.
TEST(KvDtypeTest, HalfAttentionIsFp32AttentionOfTheWidenedValuesOnEveryPath) {
  std::mt19937 rng(4);
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    for (int hd : {8, 48, 72, 128}) {
      const AttentionCase c(hd, d, &rng);
      std::vector<float> k_wide(c.k_half.size()), v_wide(c.v_half.size());
      for (size_t i = 0; i < k_wide.size(); ++i) {
        k_wide[i] = d == KvDtype::kF16 ? F16ToFloat(c.k_half[i]) : Bf16ToFloat(c.k_half[i]);
        v_wide[i] = d == KvDtype::kF16 ? F16ToFloat(c.v_half[i]) : Bf16ToFloat(c.v_half[i]);
      }
      for (CpuIsa isa : SupportedIsas()) {
        const std::vector<float> want = c.Run(isa, k_wide.data(), v_wide.data(), KvDtype::kF32);
        const std::vector<float> got = c.Run(isa, c.k_half.data(), c.v_half.data(), d);
        EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
            << CpuIsaName(isa) << " " << KvDtypeName(d) << " hd=" << hd;
      }
    }
  }
}

// Half cache against fp32 cache on the same random data, each element within a first-order bound derived from
// the data. Each cached element carries one rounding, relative error <= u (2^-11 f16, 2^-8 bf16; these normal
// values are far from the subnormal range). So score s_p = q·k_p / sqrt(d) moves by at most
// e_p = u · sum_i |q_i k_pi| / sqrt(d); the softmax weights move by dw_p = w_p (ds_p - sum_r w_r ds_r), and
// o_i = sum_p w_p v_pi moves by sum_p w_p ds_p (v_pi - o_i) + sum_p w_p dv_pi, so
//   |do_i| <= sum_p w_p e_p |v_pi - o_i| + u sum_p w_p |v_pi|.
// The check allows 1.25 × that plus 1e-5 (the fp32 rounding of both computations, the second-order terms
// O(e^2), and the bound's w and o taken from the fp32 result rather than exact values).
TEST(KvDtypeTest, HalfAttentionIsWithinTheRoundingBoundOfFp32Attention) {
  std::mt19937 rng(5);
  for (KvDtype d : {KvDtype::kF16, KvDtype::kBf16}) {
    const double u = d == KvDtype::kF16 ? 0x1p-11 : 0x1p-8;
    for (int hd : {48, 128}) {
      const AttentionCase c(hd, d, &rng);
      double worst_ratio = 0, worst_err = 0;
      for (CpuIsa isa : SupportedIsas()) {
        const std::vector<float> ref = c.Run(isa, c.k_f32.data(), c.v_f32.data(), KvDtype::kF32);
        const std::vector<float> got = c.Run(isa, c.k_half.data(), c.v_half.data(), d);
        for (size_t t = 0; t < c.token_seq.size(); ++t) {
          const int s = c.token_seq[t], num_keys = c.positions[t] + 1;
          for (int h = 0; h < c.nh; ++h) {
            const int g = h / (c.nh / c.nkv);
            const float* q = c.q.data() + (t * c.nh + h) * hd;
            auto row = [&](const std::vector<float>& cache, int p) {
              const int64_t block = c.tables[s * c.max_blocks + p / c.bs];
              return cache.data() + ((block * c.nkv + g) * c.bs + p % c.bs) * hd;
            };
            std::vector<double> w(num_keys), e(num_keys);
            double m = -INFINITY;
            for (int p = 0; p < num_keys; ++p) {
              double dot = 0, mag = 0;
              for (int i = 0; i < hd; ++i) {
                dot += static_cast<double>(q[i]) * row(c.k_f32, p)[i];
                mag += std::fabs(static_cast<double>(q[i]) * row(c.k_f32, p)[i]);
              }
              w[p] = dot / std::sqrt(static_cast<double>(hd));
              e[p] = u * mag / std::sqrt(static_cast<double>(hd));
              m = std::max(m, w[p]);
            }
            double z = 0;
            for (double& x : w) z += (x = std::exp(x - m));
            for (double& x : w) x /= z;
            for (int i = 0; i < hd; ++i) {
              const size_t idx = (t * c.nh + h) * hd + i;
              double bound = 0;
              for (int p = 0; p < num_keys; ++p) {
                const double vp = row(c.v_f32, p)[i];
                bound += w[p] * (e[p] * std::fabs(vp - ref[idx]) + u * std::fabs(vp));
              }
              const double err = std::fabs(static_cast<double>(got[idx]) - ref[idx]);
              ASSERT_LE(err, 1.25 * bound + 1e-5)
                  << CpuIsaName(isa) << " " << KvDtypeName(d) << " hd=" << hd << " t=" << t << " h=" << h;
              worst_ratio = std::max(worst_ratio, err / (bound + 1e-30));
              worst_err = std::max(worst_err, err);
            }
          }
        }
      }
      std::printf("%s hd=%d: max |error| %.3g, max error / bound %.3f\n", KvDtypeName(d), hd, worst_err,
                  worst_ratio);
    }
  }
}

}  // namespace
}  // namespace llama
