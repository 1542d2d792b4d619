// FlagSet: the llama-chat subcommands' one flag parser: each type, both spellings, defaults from the bound fields
// (shown by Usage), required and optional flags, and every kind of bad input as INVALID_ARGUMENT naming the flag.
#include "tools/cli_flags.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama::cli {
namespace {

using ::testing::HasSubstr;

// argv for Parse from strings (Parse never writes through it).
class Argv {
 public:
  explicit Argv(std::vector<std::string> args) : args_(std::move(args)) {
    for (std::string& a : args_) ptrs_.push_back(a.data());
  }
  int argc() { return static_cast<int>(ptrs_.size()); }
  char** argv() { return ptrs_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> ptrs_;
};

struct Fields {
  std::string model_dir;
  std::string backend = "cpu";
  int threads = 0;
  uint64_t seed = 7;
  float temperature = 0.8f;
  double fraction = 0.25;
  bool verbose = false;
  int kv_heads = 0;
};

class FlagSetTest : public ::testing::Test {
 protected:
  FlagSetTest() : flags_("demo", "--model_dir DIR [flags]", "A demo command.") {
    flags_.AddRequired("model_dir", &f_.model_dir, "model directory");
    flags_.Add("backend", &f_.backend, "cpu or cuda");
    flags_.Add("threads", &f_.threads, "threads");
    flags_.Add("seed", &f_.seed, "seed");
    flags_.Add("temperature", &f_.temperature, "temperature");
    flags_.Add("fraction", &f_.fraction, "a fraction");
    flags_.Add("verbose", &f_.verbose, "talk more");
    flags_.AddOptional("kv_heads", &f_.kv_heads, "unset: keep all");
  }
  absl::Status Parse(std::vector<std::string> args) {
    Argv argv(std::move(args));
    return flags_.Parse(argv.argc(), argv.argv());
  }
  Fields f_;
  FlagSet flags_;
};

TEST_F(FlagSetTest, ParsesEveryTypeInBothSpellings) {
  ASSERT_TRUE(Parse({"--model_dir", "/m", "--backend=cuda", "--threads", "3", "--seed=18446744073709551615",
                     "--temperature", "0", "--fraction=0.5", "--verbose", "--kv_heads", "2"})
                  .ok());
  EXPECT_EQ(f_.model_dir, "/m");
  EXPECT_EQ(f_.backend, "cuda");
  EXPECT_EQ(f_.threads, 3);
  EXPECT_EQ(f_.seed, 18446744073709551615ull);
  EXPECT_EQ(f_.temperature, 0.0f);
  EXPECT_EQ(f_.fraction, 0.5);
  EXPECT_TRUE(f_.verbose);
  EXPECT_TRUE(flags_.Has("kv_heads"));
  EXPECT_EQ(f_.kv_heads, 2);
}

TEST_F(FlagSetTest, UnsetFlagsKeepTheFieldsDefaults) {
  ASSERT_TRUE(Parse({"--model_dir=/m"}).ok());
  EXPECT_EQ(f_.backend, "cpu");
  EXPECT_EQ(f_.seed, 7u);
  EXPECT_EQ(f_.temperature, 0.8f);
  EXPECT_FALSE(f_.verbose);
  EXPECT_FALSE(flags_.Has("kv_heads"));
  EXPECT_FALSE(flags_.help_requested());
}

TEST_F(FlagSetTest, BoolTakesAnExplicitValue) {
  f_.verbose = true;
  ASSERT_TRUE(Parse({"--model_dir=/m", "--verbose=false"}).ok());
  EXPECT_FALSE(f_.verbose);
  EXPECT_THAT(Parse({"--model_dir=/m", "--verbose=maybe"}).message(), HasSubstr("--verbose must be true or false"));
}

TEST_F(FlagSetTest, BadInputIsInvalidArgumentNamingTheFlag) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--model_dir=/m", "--bogus", "1"}, "unknown flag --bogus"},
      {{"--model_dir=/m", "--threads"}, "flag --threads needs a value"},
      {{"--model_dir=/m", "--threads", "many"}, "--threads must be an integer, got 'many'"},
      {{"--model_dir=/m", "--seed=-1"}, "--seed must be a non-negative integer, got '-1'"},
      {{"--model_dir=/m", "--temperature=warm"}, "--temperature must be a number, got 'warm'"},
      {{"--model_dir=/m", "stray"}, "unexpected argument 'stray'"},
      {{"--threads=1"}, "missing required flag --model_dir"},
      {{"--model_dir="}, "missing required flag --model_dir"},
  };
  for (const Case& c : cases) {
    Fields fresh;
    FlagSet flags("demo", "", "");
    flags.AddRequired("model_dir", &fresh.model_dir, "");
    flags.Add("threads", &fresh.threads, "");
    flags.Add("seed", &fresh.seed, "");
    flags.Add("temperature", &fresh.temperature, "");
    Argv argv(c.args);
    const absl::Status status = flags.Parse(argv.argc(), argv.argv());
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
}

TEST(FlagSetAliasTest, AnAliasSetsTheSameFieldAndCountsAsGiven) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--model", "/a.gguf"},
                                               std::vector<std::string>{"--model_dir=/a.gguf"}}) {
    std::string model;
    FlagSet flags("demo", "", "");
    flags.AddRequired("model", &model, "model directory or GGUF file");
    flags.AddAlias("model_dir", "model");
    Argv argv(args);
    ASSERT_TRUE(flags.Parse(argv.argc(), argv.argv()).ok());
    EXPECT_EQ(model, "/a.gguf");
    EXPECT_TRUE(flags.Has("model"));
    EXPECT_THAT(flags.Usage(), HasSubstr("--model_dir TEXT"));
    EXPECT_THAT(flags.Usage(), HasSubstr("same as --model"));
  }
  std::string model;
  FlagSet flags("demo", "", "");
  flags.AddRequired("model", &model, "");
  flags.AddAlias("model_dir", "model");
  Argv none(std::vector<std::string>{});
  EXPECT_THAT(flags.Parse(none.argc(), none.argv()).message(), HasSubstr("missing required flag --model"));
}

TEST_F(FlagSetTest, HelpWinsOverEverythingElse) {
  EXPECT_TRUE(Parse({"--bogus", "--help"}).ok());
  EXPECT_TRUE(flags_.help_requested());
}

TEST_F(FlagSetTest, UsageListsEveryFlagWithTheDefaultOfItsField) {
  const std::string usage = flags_.Usage();
  EXPECT_THAT(usage, HasSubstr("usage: llama-chat demo --model_dir DIR [flags]\nA demo command."));
  EXPECT_THAT(usage, HasSubstr("--model_dir TEXT"));
  EXPECT_THAT(usage, HasSubstr("model directory (required)"));
  EXPECT_THAT(usage, HasSubstr("--backend TEXT"));
  EXPECT_THAT(usage, HasSubstr("cpu or cuda (default: \"cpu\")"));
  EXPECT_THAT(usage, HasSubstr("threads (default: 0)"));
  EXPECT_THAT(usage, HasSubstr("seed (default: 7)"));
  EXPECT_THAT(usage, HasSubstr("temperature (default: 0.8)"));
  EXPECT_THAT(usage, HasSubstr("a fraction (default: 0.25)"));
  EXPECT_THAT(usage, HasSubstr("--verbose "));
  EXPECT_THAT(usage, HasSubstr("talk more (default: false)"));
  EXPECT_THAT(usage, HasSubstr("unset: keep all\n"));  // optional: no default shown
}

TEST(FlagSetDeathTest, AFlagIsDeclaredOnce) {
  int a = 0, b = 0;
  FlagSet flags("demo", "", "");
  flags.Add("n", &a, "");
  EXPECT_DEATH(flags.Add("n", &b, ""), "CHECK failed");
}

}  // namespace
}  // namespace llama::cli
