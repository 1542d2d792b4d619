// The llama-chat binary's flag convention: `llama-chat --help` lists every subcommand, `llama-chat <sub> --help`
// lists that subcommand's flags with their defaults (exit 0), and an unknown flag, a missing required flag or a
// malformed value is a clear error on stderr naming it (exit 2) for every subcommand.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace llama {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Outcome LlamaChat(const std::string& args) {
  // gtest's TempDir is /tmp, shared by every checkout on the machine: the files carry this process's id.
  const std::string dir = absl::StrCat(::testing::TempDir(), "llama_chat_cli_test.", getpid());
  std::filesystem::create_directories(dir);
  const std::string command = absl::StrCat(LLAMA_BIN_DIR, "/llama-chat ", args, " > ", dir, "/cli_out.txt 2> ", dir,
                                           "/cli_err.txt");
  const int status = std::system(command.c_str());
  Outcome run;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = ReadAll(dir + "/cli_out.txt");
  run.err = ReadAll(dir + "/cli_err.txt");
  std::filesystem::remove_all(dir);
  return run;
}

// The subcommand names `llama-chat --help` lists ("  name  description" lines after "commands:").
std::vector<std::string> Subcommands() {
  const Outcome run = LlamaChat("--help");
  EXPECT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> names;
  bool in_list = false;
  for (absl::string_view line : absl::StrSplit(run.out, '\n')) {
    if (line == "commands:") {
      in_list = true;
    } else if (in_list && absl::ConsumePrefix(&line, "  ")) {
      names.emplace_back(line.substr(0, line.find(' ')));
    } else if (in_list) {
      break;
    }
  }
  return names;
}

class LlamaChatCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::ifstream(absl::StrCat(LLAMA_BIN_DIR, "/llama-chat")).good())
        << "build the llama-chat target first";
  }
};

TEST_F(LlamaChatCliTest, HelpListsEverySubcommand) {
  EXPECT_THAT(Subcommands(), ::testing::UnorderedElementsAre("bench", "bench-serve", "chat", "convert", "generate",
                                                             "load", "tokenize", "train-rm-head"));
}

TEST_F(LlamaChatCliTest, EverySubcommandHelpListsItsFlags) {
  for (const std::string& name : Subcommands()) {
    const Outcome run = LlamaChat(name + " --help");
    EXPECT_EQ(run.exit_code, 0) << name << ": " << run.err;
    EXPECT_THAT(run.out, StartsWith("usage: llama-chat " + name + " ")) << name;
    EXPECT_THAT(run.out, HasSubstr("\nflags:\n  --")) << name;
  }
  // A few flags each, with the defaults their option structs give.
  const Outcome generate = LlamaChat("generate --help");
  for (const char* flag : {"--model TEXT", "--model_dir TEXT", "--prompt TEXT", "--dialog TEXT", "--prompts TEXT", "--threads N",
                           "--backend TEXT", "--num_kv_blocks N", "--max_num_seqs N"}) {
    EXPECT_THAT(generate.out, HasSubstr(flag)) << flag;
  }
  EXPECT_THAT(generate.out, HasSubstr("(default: 256)"));  // GenerateOptions::max_new_tokens
  EXPECT_THAT(generate.out, HasSubstr("(default: 128)"));  // --prompts: 128 tokens per prompt
  EXPECT_THAT(generate.out, HasSubstr("sequences in one engine step at most (default: 64)"));  // SchedulerConfig
  EXPECT_THAT(LlamaChat("tokenize --help").out, HasSubstr("--max_prompt_tokens N"));
  EXPECT_THAT(LlamaChat("convert --help").out, HasSubstr("--kv_heads N"));
  EXPECT_THAT(LlamaChat("convert --help").out, HasSubstr("--gguf_type TEXT"));
  EXPECT_THAT(LlamaChat("chat --help").out, HasSubstr("the server's gRPC address (required)"));
  EXPECT_THAT(LlamaChat("train-rm-head --help").out, HasSubstr("(default: 0.2)"));
  EXPECT_THAT(LlamaChat("bench-serve --help").out, HasSubstr("tokens in one engine step at most (default: 512)"));
  EXPECT_THAT(LlamaChat("bench --help").out, HasSubstr("--repeats N"));
  EXPECT_THAT(LlamaChat("load --help").out, HasSubstr("--request_rate TEXT"));
  EXPECT_THAT(LlamaChat("load --help").out, HasSubstr("--num_requests TEXT"));
}

TEST_F(LlamaChatCliTest, UnknownFlagIsAClearErrorForEverySubcommand) {
  for (const std::string& name : Subcommands()) {
    const Outcome run = LlamaChat(name + " --no_such_flag 1");
    EXPECT_EQ(run.exit_code, 2) << name;
    EXPECT_THAT(run.err, HasSubstr("llama-chat " + name + ": unknown flag --no_such_flag")) << name;
    EXPECT_THAT(run.err, HasSubstr("llama-chat " + name + " --help lists the flags")) << name;
    EXPECT_EQ(run.out, "") << name;
  }
  const Outcome batch = LlamaChat("generate --prompts p.txt --model_dir m --no_such_flag 1");  // the --prompts mode
  EXPECT_EQ(batch.exit_code, 2);
  EXPECT_THAT(batch.err, HasSubstr("llama-chat generate: unknown flag --no_such_flag"));
}

TEST_F(LlamaChatCliTest, MissingAndMalformedValuesAreNamed) {
  const Outcome missing = LlamaChat("convert --tokenizer t --out o");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("llama-chat convert: give exactly one of --from_llama2c and --to_gguf"));
  const Outcome no_model = LlamaChat("generate --prompt hi");
  EXPECT_EQ(no_model.exit_code, 2);
  EXPECT_THAT(no_model.err, HasSubstr("llama-chat generate: missing required flag --model"));
  const Outcome malformed = LlamaChat("bench --model_dir m --repeats many");
  EXPECT_EQ(malformed.exit_code, 2);
  EXPECT_THAT(malformed.err, HasSubstr("llama-chat bench: --repeats must be an integer, got 'many'"));
  const Outcome no_server = LlamaChat("load --concurrency 4");
  EXPECT_EQ(no_server.exit_code, 2);
  EXPECT_THAT(no_server.err, HasSubstr("llama-chat load: --server: is required"));
  const Outcome bad_level = LlamaChat("load --server x:1 --concurrency 1,0");
  EXPECT_EQ(bad_level.exit_code, 2);
  EXPECT_THAT(bad_level.err, HasSubstr("--concurrency: '0' is not a positive integer"));
  const Outcome bad_slo = LlamaChat("load --server x:1 --slo ttft=5");
  EXPECT_EQ(bad_slo.exit_code, 2);
  EXPECT_THAT(bad_slo.err, HasSubstr("--slo: unknown target 'ttft'"));
  const Outcome unknown_command = LlamaChat("frobnicate");
  EXPECT_EQ(unknown_command.exit_code, 2);
  EXPECT_THAT(unknown_command.err, HasSubstr("llama-chat: unknown command 'frobnicate'"));
}

// bench takes --dummy_weights instead of --model and stores the weights as --weights_dtype; a bad type or both
// or neither model flag is a clear error.
TEST_F(LlamaChatCliTest, BenchRunsOnDummyWeightsOfEachStorageType) {
  for (const char* dtype : {"f32", "bf16", "q8_0"}) {
    const Outcome run = LlamaChat(absl::StrCat("bench --dummy_weights tiny --weights_dtype ", dtype,
                                               " --prompt_tokens 4 --gen_tokens 4 --repeats 1 --threads 1"));
    EXPECT_EQ(run.exit_code, 0) << run.err;
    EXPECT_THAT(run.out, HasSubstr(absl::StrCat("model dummy tiny:")));
    EXPECT_THAT(run.out, HasSubstr(absl::StrCat(", ", dtype, " weights, ")));
    EXPECT_THAT(run.out, HasSubstr("median decode"));
  }
  const Outcome bad = LlamaChat("bench --dummy_weights tiny --weights_dtype int4");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("--weights_dtype: unknown 'int4' (f32, bf16, q8_0)"));
  const Outcome neither = LlamaChat("bench");
  EXPECT_EQ(neither.exit_code, 1);
  EXPECT_THAT(neither.err, HasSubstr("give exactly one of --model and --dummy_weights"));
  const Outcome unknown_shape = LlamaChat("bench --dummy_weights llama-9");
  EXPECT_EQ(unknown_shape.exit_code, 1);
  EXPECT_THAT(unknown_shape.err, HasSubstr("unknown shape 'llama-9'"));
  EXPECT_THAT(LlamaChat("generate --help").out, HasSubstr("--weights_dtype TEXT"));
  // The CPU storage flags with --backend cuda are refused before any device work, as the server does.
  for (const char* flag : {"--weights_dtype q8_0", "--kv_dtype f16"}) {
    const Outcome cuda = LlamaChat(absl::StrCat("bench --dummy_weights tiny --backend cuda ", flag));
    EXPECT_EQ(cuda.exit_code, 1) << flag;
    EXPECT_THAT(cuda.err, HasSubstr("are CPU backend flags")) << flag;
  }
}

// bench-serve runs both paths over requests of the same exact lengths: the direct rounds' prompt and output token
// totals equal the gRPC (separate load process) rounds'.
TEST_F(LlamaChatCliTest, BenchServeComparesTheSameWork) {
  const std::string model = std::string(LLAMA_SOURCE_DIR) + "/models/stories15M";
  if (!std::ifstream(model + "/model.safetensors").good()) GTEST_SKIP() << "models/stories15M missing";
  const Outcome run = LlamaChat(absl::StrCat("bench-serve --model ", model, " --concurrency 2 --num_requests 4",
                                             " --input_tokens 20 --output_tokens 8 --rounds 1 --threads 1"));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_THAT(run.out, HasSubstr("gRPC path throughput cost"));
  EXPECT_THAT(run.out, HasSubstr("load-process (client) CPU per output token"));
  std::vector<std::string> totals;  // "prompt output" of each round line
  for (absl::string_view line : absl::StrSplit(run.out, '\n')) {
    const std::vector<absl::string_view> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (cols.size() > 4 && cols[0] == "0" && (cols[1] == "direct" || cols[1] == "grpc")) {
      totals.push_back(absl::StrCat(cols[2], " ", cols[3]));
    }
  }
  ASSERT_EQ(totals.size(), 2u) << run.out;
  EXPECT_EQ(totals[0], "80 32");
  EXPECT_EQ(totals[1], "80 32");
}

}  // namespace
}  // namespace llama
