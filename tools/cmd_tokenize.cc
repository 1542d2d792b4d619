// llama-chat tokenize: prints the LLaMA 2-Chat prompt ids of a dialog file, space-separated: exactly the ids that
// generation feeds the model. Like the server's Chat, the default limit is the model's context minus one position
// for the first generated token (oldest turns dropped to fit); --max_prompt_tokens overrides it (0 = no limit).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/model/config.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/dialog_json.h"
#include "engine/text/tokenizer.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--dialog ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<int> PromptLimit(const CliFlags& flags, const std::string& model_dir) {
  if (flags.Has("max_prompt_tokens")) return flags.GetInt("max_prompt_tokens", 0);
  absl::StatusOr<ModelConfig> config = LoadModelConfig(model_dir);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(config.status().message(), " (or pass --max_prompt_tokens; 0 = no limit)"));
  }
  return config->max_position_embeddings - 1;
}

absl::Status Tokenize(const CliFlags& flags) {
  ASSIGN_OR_RETURN(const std::string model_dir, flags.RequireString("model_dir"));
  ASSIGN_OR_RETURN(const std::string dialog_path, flags.RequireString("dialog"));
  ASSIGN_OR_RETURN(const int max_prompt_tokens, PromptLimit(flags, model_dir));
  ASSIGN_OR_RETURN(const std::string json_text, ReadTextFile(dialog_path));
  ASSIGN_OR_RETURN(const std::vector<Message> dialog, ParseDialogJson(json_text));
  ASSIGN_OR_RETURN(const std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(model_dir + "/tokenizer.model"));
  ASSIGN_OR_RETURN(const ChatPrompt prompt, BuildChatPrompt(*tokenizer, dialog, max_prompt_tokens));
  std::printf("%s\n", absl::StrJoin(prompt.token_ids, " ").c_str());
  if (prompt.dropped_turns > 0) {
    std::fprintf(stderr, "llama-chat tokenize: dropped the %d oldest turn(s) to fit %d prompt tokens\n",
                 prompt.dropped_turns, max_prompt_tokens);
  }
  return absl::OkStatus();
}

int RunTokenize(int argc, char** argv) {
  auto flags = CliFlags::Parse(argc, argv, {"model_dir", "dialog", "max_prompt_tokens"});
  if (!flags.ok()) return Fail("tokenize", flags.status());
  if (!flags->positional().empty()) {
    return Fail("tokenize",
                absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags->positional()[0], "'")));
  }
  if (absl::Status status = Tokenize(*flags); !status.ok()) return Fail("tokenize", status);
  return 0;
}

}  // namespace

LLAMA_SUBCOMMAND(tokenize,
                 "print the chat prompt ids of a dialog (--model_dir DIR --dialog FILE.json "
                 "[--max_prompt_tokens N; default: context - 1, 0 = no limit])",
                 RunTokenize);

}  // namespace llama::cli
