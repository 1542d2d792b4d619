// The figures of a load level from hand-made records: percentiles (golden values from numpy.percentile, linear
// interpolation, for the lists below), TPOT, ITL pooling, goodput under SLOs, errors by code, throughputs.
#include "tools/load/load_stats.h"

#include "gtest/gtest.h"

namespace llama::load {
namespace {

namespace v1 = ::llamachat::v1;

TEST(QuantileTest, MatchesNumpyLinearInterpolation) {
  // numpy.percentile([12, 3, 7, 1, 9, 4, 15, 2], [50, 90, 99]) = [5.5, 12.9, 14.79]; mean 6.625.
  const Distribution d = Summarize({12, 3, 7, 1, 9, 4, 15, 2});
  EXPECT_EQ(d.count, 8);
  EXPECT_DOUBLE_EQ(d.mean, 6.625);
  EXPECT_NEAR(d.p50, 5.5, 1e-12);
  EXPECT_NEAR(d.p90, 12.9, 1e-12);
  EXPECT_NEAR(d.p99, 14.79, 1e-12);
  EXPECT_EQ(d.max, 15);
  // numpy.percentile([1, 2, 3, 4], [50, 90, 99]) = [2.5, 3.7, 3.97].
  const Distribution e = Summarize({4, 3, 2, 1});
  EXPECT_NEAR(e.p50, 2.5, 1e-12);
  EXPECT_NEAR(e.p90, 3.7, 1e-12);
  EXPECT_NEAR(e.p99, 3.97, 1e-12);
}

TEST(QuantileTest, EmptyAndSingle) {
  const Distribution empty = Summarize({});
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.p99, 0);
  const Distribution one = Summarize({3.5});
  EXPECT_EQ(one.p50, 3.5);
  EXPECT_EQ(one.p99, 3.5);
}

RequestRecord Ok(double start, double ttft, double e2e, int output_tokens, std::vector<double> itl) {
  RequestRecord r;
  r.start_s = r.scheduled_s = start;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.output_tokens = output_tokens;
  r.prompt_tokens = 10;
  r.itl_s = std::move(itl);
  r.num_deltas = static_cast<int>(r.itl_s.size()) + 1;
  r.has_final = true;
  r.finish_reason = v1::FINISH_REASON_LENGTH;
  return r;
}

RequestRecord Failed(grpc::StatusCode code, std::string message) {
  RequestRecord r;
  r.code = code;
  r.error = std::move(message);
  r.e2e_s = 0.001;
  return r;
}

TEST(SummarizeLevelTest, CountsLatenciesAndGoodput) {
  LevelRun run;
  // TPOT = (e2e - ttft) / (tokens - 1): 0.09 s / 9 = 10 ms; 0.18 s / 9 = 20 ms; 0.1 s / 4 = 25 ms.
  run.records.push_back(Ok(0.0, 0.010, 0.100, 10, {0.01, 0.02}));
  run.records.push_back(Ok(0.1, 0.020, 0.200, 10, {0.03}));
  run.records.push_back(Ok(0.2, 0.300, 0.400, 5, {}));
  run.records.push_back(Failed(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"));
  run.records.push_back(Failed(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full again"));
  run.records.push_back(Failed(grpc::StatusCode::UNAVAILABLE, "down"));
  run.wall_s = 2.0;
  run.client_cpu_s = 0.025;
  LevelPlan plan;
  plan.concurrency = 4;
  SloTargets slo;
  slo.ttft_ms = 100;   // the third request misses it
  slo.tpot_ms = 15;    // the second misses it
  const LevelSummary s = SummarizeLevel("concurrency 4", plan, run, slo, /*include_token_ids=*/false);
  EXPECT_EQ(s.num_requests, 6);
  EXPECT_EQ(s.num_ok, 3);
  EXPECT_EQ(s.num_failed, 3);
  EXPECT_EQ(s.errors.at("RESOURCE_EXHAUSTED"), 2);
  EXPECT_EQ(s.errors.at("UNAVAILABLE"), 1);
  EXPECT_EQ(s.first_error.at("RESOURCE_EXHAUSTED"), "queue full");
  EXPECT_EQ(s.finish_reasons.at("length"), 3);
  EXPECT_EQ(s.output_tokens, 25);
  EXPECT_EQ(s.prompt_tokens, 30);
  EXPECT_DOUBLE_EQ(s.request_throughput, 1.5);
  EXPECT_DOUBLE_EQ(s.output_throughput, 12.5);
  EXPECT_DOUBLE_EQ(s.total_token_throughput, 27.5);
  EXPECT_EQ(s.ttft_ms.count, 3);
  EXPECT_NEAR(s.ttft_ms.p50, 20, 1e-9);
  EXPECT_NEAR(s.tpot_ms.mean, (10 + 20 + 25) / 3.0, 1e-9);
  EXPECT_EQ(s.itl_ms.count, 3);
  EXPECT_NEAR(s.itl_ms.p50, 20, 1e-9);
  EXPECT_NEAR(s.e2e_ms.max, 400, 1e-9);
  EXPECT_EQ(s.good_requests, 1);
  EXPECT_DOUBLE_EQ(s.goodput, 0.5);
  EXPECT_NEAR(s.client_cpu_ms_per_output_token, 1.0, 1e-12);
}

TEST(SummarizeLevelTest, WithoutSloEverySuccessIsGood) {
  LevelRun run;
  run.records.push_back(Ok(0, 0.5, 1.0, 3, {}));
  run.records.push_back(Failed(grpc::StatusCode::INVALID_ARGUMENT, "bad"));
  run.wall_s = 1;
  const LevelSummary s = SummarizeLevel("x", LevelPlan{}, run, SloTargets{}, false);
  EXPECT_EQ(s.good_requests, 1);
  EXPECT_EQ(s.errors.at("INVALID_ARGUMENT"), 1);
}

TEST(SummarizeLevelTest, TokenIdCountsAreCheckedOnLengthFinishes) {
  LevelRun run;
  run.records.push_back(Ok(0, 0.1, 0.2, 4, {}));
  run.records.back().streamed_token_ids = 4;
  run.records.push_back(Ok(0, 0.1, 0.2, 4, {}));
  run.records.back().streamed_token_ids = 3;  // one token lost on the way
  run.records.push_back(Ok(0, 0.1, 0.2, 4, {}));
  run.records.back().streamed_token_ids = 3;
  run.records.back().finish_reason = v1::FINISH_REASON_STOP;  // EOS is counted but never streamed
  run.wall_s = 1;
  EXPECT_EQ(SummarizeLevel("x", LevelPlan{}, run, SloTargets{}, true).token_id_mismatches, 1);
  EXPECT_EQ(SummarizeLevel("x", LevelPlan{}, run, SloTargets{}, false).token_id_mismatches, 0);
}

TEST(SummarizeLevelTest, OpenLoopAchievedRateAndLag) {
  LevelRun run;
  for (int i = 0; i < 5; ++i) {
    run.records.push_back(Ok(0.25 * i + 0.002, 0.01, 0.02, 2, {}));
    run.records.back().scheduled_s = 0.25 * i;
  }
  run.wall_s = 1.1;
  LevelPlan plan;
  plan.rate_per_s = 4;
  const LevelSummary s = SummarizeLevel("rate 4/s", plan, run, SloTargets{}, false);
  EXPECT_NEAR(s.achieved_rate, 4.0, 1e-9);  // 4 gaps over 1 s
  EXPECT_NEAR(s.mean_schedule_lag_ms, 2.0, 1e-9);
  EXPECT_EQ(s.request_rate, 4);
  EXPECT_EQ(s.concurrency, 0);
}

}  // namespace
}  // namespace llama::load
