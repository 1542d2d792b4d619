// The CPU kernels against direct scalar formulas: matmul tiles and tails, RoPE pairs, RMSNorm, SiLU, softmax,
// paged attention through a shuffled block table, and the thread pool's task coverage.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/packed_matmul.h"
#include "engine/cpu/paged_attention.h"
#include "engine/cpu/thread_pool.h"
#include "gtest/gtest.h"
#include "tests/support/cpu_kernel_inputs.h"

namespace llama {
namespace {

// Every (tokens, in, out) combination around the 4x4 register tile and the 16-lane vector width, with and without
// accumulation. fp32 sums of <= 70 unit-variance products in a different order differ by ~1e-5 at most.
TEST(MatMulTest, MatchesScalarReferenceOnAllTileAndTailShapes) {
  std::mt19937 rng(1);
  ThreadPool pool(3);
  for (int n : {1, 2, 4, 5, 9}) {
    for (int in : {1, 15, 16, 17, 33, 70}) {
      for (int out : {1, 3, 4, 7, 13}) {
        const auto x = Random(n * in, &rng), w = Random(out * in, &rng), y0 = Random(n * out, &rng);
        for (bool acc : {false, true}) {
          std::vector<float> want = y0, got = y0, got_pool = y0;
          MatMulRowsReference(x.data(), w.data(), want.data(), n, in, out, 0, out, acc);
          MatMulRows(x.data(), w.data(), got.data(), n, in, out, 0, out, acc);
          MatMul(x.data(), w.data(), got_pool.data(), n, in, out, acc, &pool);
          for (int i = 0; i < n * out; ++i) {
            ASSERT_NEAR(got[i], want[i], 1e-4f) << n << "x" << in << "x" << out << " acc " << acc << " i " << i;
          }
          EXPECT_EQ(got, got_pool);  // the split across threads never changes a value
        }
      }
    }
  }
}

// The packed kernel against an fp64 reference on shapes around its 16-row vector, 64-row panel and 6-token tile,
// any row range (not vector aligned), with and without accumulation; rows outside the range stay untouched. Its
// fp32 chain of in (+1 with accumulation) roundings is within the standard bound (in + 1) · 2^-24 · sum |terms|
// of the exact sum; a wrong index or lane would be off by about the sum itself.
TEST(PackedMatMulTest, MatchesFp64ReferenceOnAnyShapeAndRowRange) {
  std::mt19937 rng(4);
  for (int n : {1, 3, 6, 7, 13}) {
    for (int in : {1, 16, 17, 40, 288}) {
      for (int out : {1, 7, 16, 17, 64, 65, 100, 130}) {
        const auto x = Random(n * in, &rng), w = Random(out * in, &rng), y0 = Random(n * out, &rng);
        std::vector<float> packed(PackedSize(out, in));
        PackWeights(w.data(), out, in, packed.data());
        for (int row : {0, out / 2, out - 1}) {
          std::vector<float> unpacked(in);
          UnpackRow(packed.data(), out, in, row, unpacked.data());
          EXPECT_EQ(unpacked, std::vector<float>(w.begin() + row * in, w.begin() + (row + 1) * in));
        }
        for (bool acc : {false, true}) {
          for (auto [lo, hi] : {std::pair{0, out}, std::pair{out / 3, out}, std::pair{1, out - 1}}) {
            if (lo >= hi) continue;
            std::vector<float> got = y0;
            PackedMatMulRows(x.data(), packed.data(), got.data(), n, in, out, lo, hi, acc);
            for (int t = 0; t < n; ++t) {
              for (int r = 0; r < out; ++r) {
                const int i = t * out + r;
                if (r < lo || r >= hi) {
                  ASSERT_EQ(got[i], y0[i]) << "row " << r << " outside [" << lo << ", " << hi << ")";
                  continue;
                }
                double sum = acc ? y0[i] : 0.0, magnitude = acc ? std::abs(y0[i]) : 0.0;
                for (int k = 0; k < in; ++k) {
                  sum += double{x[t * in + k]} * w[r * in + k];
                  magnitude += std::abs(double{x[t * in + k]} * w[r * in + k]);
                }
                ASSERT_NEAR(got[i], sum, (in + 1) * 0x1p-24 * magnitude + 1e-30)
                    << n << "x" << in << "x" << out << " t " << t << " r " << r << " acc " << acc;
              }
            }
          }
        }
      }
    }
  }
}

// Batch invariance of the packed kernel, bit for bit: token t's outputs in a batch of n equal the same token
// computed alone (n = 1, the decode path) whatever tile t lands in, and a split of the rows into ranges (threads)
// equals the whole range. Rows 0..130 cover full panels, a short last panel and vectors straddling the ranges.
TEST(PackedMatMulTest, EachTokenAndRowIsIndependentOfBatchAndSplit) {
  std::mt19937 rng(5);
  const int in = 200, out = 130;
  const auto w = Random(out * in, &rng);
  std::vector<float> packed(PackedSize(out, in));
  PackWeights(w.data(), out, in, packed.data());
  for (int n : {2, 5, 6, 8, 12, 19, 64}) {
    const auto x = Random(n * in, &rng);
    std::vector<float> batch(n * out), split(n * out);
    PackedMatMulRows(x.data(), packed.data(), batch.data(), n, in, out, 0, out, false);
    for (auto [lo, hi] : {std::pair{0, 48}, std::pair{48, 64}, std::pair{64, 67}, std::pair{67, 130}}) {
      PackedMatMulRows(x.data(), packed.data(), split.data(), n, in, out, lo, hi, false);
    }
    EXPECT_EQ(split, batch) << "n " << n;
    for (int t = 0; t < n; ++t) {
      std::vector<float> alone(out);
      PackedMatMulRows(x.data() + t * in, packed.data(), alone.data(), 1, in, out, 0, out, false);
      ASSERT_EQ(alone, std::vector<float>(batch.begin() + t * out, batch.begin() + (t + 1) * out))
          << "token " << t << " of " << n;
    }
  }
}

TEST(OpsTest, RmsNormScalesEachRowToUnitRms) {
  const std::vector<float> x = {1, 2, 3, 4, -2, 0, 0, 2};
  const std::vector<float> w = {1, 1, 2, 0.5f};
  std::vector<float> out(8);
  RmsNorm(x.data(), w.data(), 2, 4, 0.0f, out.data());
  const float r0 = std::sqrt(30.0f / 4), r1 = std::sqrt(8.0f / 4);
  const std::vector<float> want = {1 / r0, 2 / r0, 6 / r0, 2 / r0, -2 / r1, 0, 0, 1 / r1};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(out[i], want[i], 1e-6f) << i;
}

TEST(OpsTest, RopeRotatesHalfPairsByScaledPosition) {
  const int hd = 8, heads = 2;
  const RopeTable table = BuildRopeTable(16, hd, 100.0f, 2.0f);
  std::mt19937 rng(2);
  const auto x0 = Random(2 * heads * hd, &rng);
  std::vector<float> x = x0;
  const int32_t pos[2] = {0, 5};
  ApplyRope(x.data(), pos, 2, heads, 1, 2, table);  // only head 1
  for (int t = 0; t < 2; ++t) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        const float* a = x0.data() + (t * heads + h) * hd;
        const float angle = h == 0 ? 0.0f : (pos[t] / 2.0f) * std::pow(100.0f, -2.0f * i / hd);
        const float* b = x.data() + (t * heads + h) * hd;
        EXPECT_NEAR(b[i], a[i] * std::cos(angle) - a[i + hd / 2] * std::sin(angle), 1e-5f);
        EXPECT_NEAR(b[i + hd / 2], a[i + hd / 2] * std::cos(angle) + a[i] * std::sin(angle), 1e-5f);
      }
    }
  }
}

TEST(OpsTest, SiluMulAndSoftmax) {
  const std::vector<float> g = {-2, 0, 1.5f}, u = {3, 4, -1};
  std::vector<float> out(3);
  SiluMul(g.data(), u.data(), 3, out.data());
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-g[i])) * u[i], 1e-6f);
  std::vector<float> s = {1, 2, 3, 1000};
  Softmax(s.data(), 3);
  const float z = std::exp(-2.0f) + std::exp(-1.0f) + 1.0f;
  EXPECT_NEAR(s[0], std::exp(-2.0f) / z, 1e-6f);
  EXPECT_NEAR(s[2], 1.0f / z, 1e-6f);
  EXPECT_EQ(s[3], 1000);
}

// Two sequences in shuffled blocks of a shared cache, GQA 4 query heads over 2 KV heads: each query (token, head)
// equals softmax(q·K^T / sqrt(d)) V over its own sequence's positions 0..p, computed here directly.
TEST(PagedAttentionTest, MatchesDirectAttentionThroughShuffledBlocks) {
  const int hd = 8, nh = 4, nkv = 2, bs = 4, num_blocks = 6, max_blocks = 3;
  std::mt19937 rng(3);
  const std::vector<int32_t> tables = {4, 1, 5, 0, 3, -1};  // seq 0: 4,1,5 (10 tokens); seq 1: 0,3 (6 tokens)
  const std::vector<int> lens = {10, 6};
  std::vector<std::vector<float>> keys(2), values(2);  // per seq [len, nkv, hd]
  std::vector<float> k_cache(num_blocks * nkv * bs * hd), v_cache(k_cache.size());
  for (int s = 0; s < 2; ++s) {
    keys[s] = Random(lens[s] * nkv * hd, &rng);
    values[s] = Random(lens[s] * nkv * hd, &rng);
    std::vector<int32_t> slots(lens[s]);
    const auto row = absl::MakeConstSpan(tables).subspan(s * max_blocks, max_blocks);
    for (int p = 0; p < lens[s]; ++p) slots[p] = static_cast<int32_t>(KvSlot(row, p, bs));
    WriteKvCache(keys[s].data(), values[s].data(), slots.data(), lens[s], nkv, hd, bs, 0, nkv, k_cache.data(),
                 v_cache.data());
  }
  // Queries: seq 0 positions 7, 8, 9 (a chunk), seq 1 position 5 (a decode).
  const std::vector<int32_t> token_seq = {0, 0, 0, 1}, positions = {7, 8, 9, 5};
  const auto q = Random(4 * nh * hd, &rng);
  std::vector<float> out(q.size()), scratch(16);
  PagedAttentionArgs a;
  a.q = q.data();
  a.k_cache = k_cache.data();
  a.v_cache = v_cache.data();
  a.block_tables = tables.data();
  a.token_seq = token_seq.data();
  a.positions = positions.data();
  a.out = out.data();
  a.num_tokens = 4;
  a.num_heads = nh;
  a.num_kv_heads = nkv;
  a.head_dim = hd;
  a.block_size = bs;
  a.max_blocks_per_seq = max_blocks;
  PagedAttention(a, 0, 4 * nh, scratch.data());
  for (int t = 0; t < 4; ++t) {
    for (int h = 0; h < nh; ++h) {
      const int s = token_seq[t], g = h / (nh / nkv);
      std::vector<double> sc(positions[t] + 1);
      for (int p = 0; p <= positions[t]; ++p) {
        double d = 0;
        for (int i = 0; i < hd; ++i) d += q[(t * nh + h) * hd + i] * keys[s][(p * nkv + g) * hd + i];
        sc[p] = d / std::sqrt(double{hd});
      }
      const double m = *std::max_element(sc.begin(), sc.end());
      double z = 0;
      for (double& v : sc) z += (v = std::exp(v - m));
      for (int i = 0; i < hd; ++i) {
        double o = 0;
        for (int p = 0; p <= positions[t]; ++p) o += sc[p] / z * values[s][(p * nkv + g) * hd + i];
        EXPECT_NEAR(out[(t * nh + h) * hd + i], o, 1e-5) << "token " << t << " head " << h;
      }
    }
  }
}

TEST(ThreadPoolTest, EveryTaskRunsExactlyOnceAcrossManyRegions) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(37);
    for (int region = 0; region < 2000; ++region) {
      const int tasks = 1 + region % 37;
      pool.ParallelFor(tasks, [&](int task, int tid) {
        ASSERT_LT(tid, threads);
        hits[task].fetch_add(1);
      });
    }
    int total = 0;
    for (auto& h : hits) total += h.load();
    int expected = 0;
    for (int region = 0; region < 2000; ++region) expected += 1 + region % 37;
    EXPECT_EQ(total, expected);
    EXPECT_EQ(hits[36].load(), 2000 / 37);
  }
}

TEST(ThreadPoolTest, RangesCoverEachIndexOnce) {
  ThreadPool pool(2);
  for (int64_t n : {1, 5, 16, 100, 32000}) {
    std::vector<int> seen(n, 0);
    pool.ParallelForRange(n, 4, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) seen[i]++;
    });
    EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), n);
  }
}

}  // namespace
}  // namespace llama
