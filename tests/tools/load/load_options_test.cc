// Flag values of `llama-chat load` that are not plain numbers (SLO lists, sweep lists) and LoadOptions::Validate:
// every bad value is INVALID_ARGUMENT naming the flag.
#include "tools/load/load_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama::load {
namespace {

using ::testing::HasSubstr;

TEST(ParseSloTest, NamedTargets) {
  absl::StatusOr<SloTargets> slo = ParseSlo("ttft_ms=200, tpot_ms=50.5");
  ASSERT_TRUE(slo.ok()) << slo.status();
  EXPECT_EQ(*slo->ttft_ms, 200);
  EXPECT_EQ(*slo->tpot_ms, 50.5);
  EXPECT_FALSE(slo->e2e_ms.has_value());
  EXPECT_EQ(slo->ToString(), "ttft_ms=200,tpot_ms=50.5");
  EXPECT_TRUE(ParseSlo("")->empty());
  EXPECT_EQ(*ParseSlo("e2e_ms=3000")->e2e_ms, 3000);
}

TEST(ParseSloTest, BadSpecsNameTheProblem) {
  struct Case {
    const char* spec;
    const char* message;
  };
  for (const Case& c : {Case{"ttft=200", "unknown target 'ttft'"}, Case{"ttft_ms", "not name=value"},
                        Case{"ttft_ms=-1", "positive number"}, Case{"tpot_ms=abc", "positive number"},
                        Case{"ttft_ms=1,ttft_ms=2", "given twice"}}) {
    absl::StatusOr<SloTargets> slo = ParseSlo(c.spec);
    ASSERT_FALSE(slo.ok()) << c.spec;
    EXPECT_EQ(slo.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(slo.status().message()), HasSubstr("--slo"));
    EXPECT_THAT(std::string(slo.status().message()), HasSubstr(c.message)) << c.spec;
  }
}

TEST(ParseListTest, IntsAndNumbers) {
  EXPECT_EQ(*ParseInts("concurrency", "1,4, 16,64"), (std::vector<int>{1, 4, 16, 64}));
  EXPECT_EQ(*ParsePositiveNumbers("request_rate", "2.5,10"), (std::vector<double>{2.5, 10}));
  for (const char* bad : {"", "1,,4", "0", "-3", "2.5", "x"}) {
    absl::StatusOr<std::vector<int>> ints = ParseInts("concurrency", bad);
    ASSERT_FALSE(ints.ok()) << bad;
    EXPECT_THAT(std::string(ints.status().message()), HasSubstr("--concurrency"));
  }
  EXPECT_EQ(*ParseInts("num_requests", "0,5", 0), (std::vector<int>{0, 5}));
  EXPECT_FALSE(ParseInts("num_requests", "-1", 0).ok());
  EXPECT_FALSE(ParsePositiveNumbers("request_rate", "0").ok());
  EXPECT_FALSE(ParsePositiveNumbers("request_rate", "inf").ok());
}

TEST(LoadOptionsTest, ValidateNamesTheFlag) {
  LoadOptions ok;
  ok.server = "localhost:1";
  EXPECT_TRUE(ok.Validate().ok());
  struct Case {
    void (*mutate)(LoadOptions&);
    const char* flag;
  };
  const Case cases[] = {
      {[](LoadOptions& o) { o.server.clear(); }, "--server"},
      {[](LoadOptions& o) { o.burstiness = 0; }, "--burstiness"},
      {[](LoadOptions& o) { o.num_requests = {0}; }, "--num_requests"},
      {[](LoadOptions& o) { o.duration_s = -1; }, "--duration_s"},
      {[](LoadOptions& o) { o.client_threads = 0; }, "--client_threads"},
      {[](LoadOptions& o) { o.length_scale = 0; }, "--length_scale"},
      {[](LoadOptions& o) { o.input_tokens = -1; }, "--input_tokens"},
      {[](LoadOptions& o) { o.timeout_s = 0; }, "--timeout_s"},
  };
  for (const Case& c : cases) {
    LoadOptions o = ok;
    c.mutate(o);
    const absl::Status status = o.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.flag));
  }
  LoadOptions per_level = ok;
  per_level.concurrency = {1, 4};
  per_level.num_requests = {8, 32};
  EXPECT_TRUE(per_level.Validate().ok());
  EXPECT_EQ(per_level.RequestsAt(1), 32);
  per_level.num_requests = {8, 32, 64};
  EXPECT_THAT(std::string(per_level.Validate().message()), HasSubstr("one per level (2)"));
  LoadOptions by_time = ok;
  by_time.num_requests = {0};
  by_time.duration_s = 5;
  EXPECT_TRUE(by_time.Validate().ok());
}

TEST(LoadOptionsTest, LevelNamesAndLabels) {
  LoadOptions o;
  o.server = "x:1";
  o.concurrency = {1, 16};
  o.input_tokens = 32;
  o.output_tokens = 128;
  EXPECT_EQ(o.num_levels(), 2);
  EXPECT_EQ(o.LevelName(1), "concurrency 16");
  EXPECT_EQ(o.PointLabel(1), "c=16");
  EXPECT_EQ(o.RunLabel(), "k=1, 32 in / 128 out tokens");
  o.request_rates = {4.5};
  o.num_candidates = 4;
  o.input_tokens = 0;
  o.output_tokens = 0;
  EXPECT_TRUE(o.open_loop());
  EXPECT_EQ(o.num_levels(), 1);
  EXPECT_EQ(o.LevelName(0), "rate 4.5/s");
  EXPECT_EQ(o.RunLabel(), "k=4, chat mix, Poisson");
  o.segment_tokens = 16;
  EXPECT_EQ(o.RunLabel(), "k=4, S=16, chat mix, Poisson");
  o.label = "mine";
  EXPECT_EQ(o.RunLabel(), "mine");
}

}  // namespace
}  // namespace llama::load
