// llama-chat tokenize: prints the LLaMA 2-Chat prompt ids of a dialog file, space-separated: exactly the ids that
// generation feeds the model. Like the server's Chat, the default limit is the model's context minus one position
// for the first generated token (oldest turns dropped to fit); --max_prompt_tokens overrides it (0 = no limit).
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "engine/model/model_source.h"
#include "engine/text/chat_prompt.h"
#include "engine/text/dialog_json.h"
#include "engine/text/model_tokenizer.h"
#include "engine/text/tokenizer.h"
#include "tools/backend_flags.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"
#include "tools/text_file.h"

namespace llama::cli {
namespace {

struct TokenizeArgs {
  std::string model_path;
  std::string dialog;
  int max_prompt_tokens = 0;  // only with --max_prompt_tokens; else the model's context - 1
};

absl::StatusOr<int> PromptLimit(const TokenizeArgs& args, bool limit_given) {
  if (limit_given) return args.max_prompt_tokens;
  // The model's headers only (config.json, or the GGUF's metadata): no weights are read.
  absl::StatusOr<std::unique_ptr<WeightSource>> model = OpenWeightSource(args.model_path);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(model.status().message(), " (or pass --max_prompt_tokens; 0 = no limit)"));
  }
  return (*model)->config().max_position_embeddings - 1;
}

absl::Status Tokenize(const TokenizeArgs& args, bool limit_given) {
  ASSIGN_OR_RETURN(const int max_prompt_tokens, PromptLimit(args, limit_given));
  ASSIGN_OR_RETURN(const std::string json_text, ReadTextFile("dialog", args.dialog));
  ASSIGN_OR_RETURN(const std::vector<Message> dialog, ParseDialogJson(json_text));
  ASSIGN_OR_RETURN(const std::unique_ptr<Tokenizer> tokenizer, LoadModelTokenizer(args.model_path));
  ASSIGN_OR_RETURN(const ChatPrompt prompt, BuildChatPrompt(*tokenizer, dialog, max_prompt_tokens));
  std::printf("%s\n", absl::StrJoin(prompt.token_ids, " ").c_str());
  if (prompt.dropped_turns > 0) {
    std::fprintf(stderr, "llama-chat tokenize: dropped the %d oldest turn(s) to fit %d prompt tokens\n",
                 prompt.dropped_turns, max_prompt_tokens);
  }
  return absl::OkStatus();
}

int RunTokenize(int argc, char** argv) {
  TokenizeArgs args;
  FlagSet flags("tokenize", "--model PATH --dialog FILE.json [--max_prompt_tokens N]",
                "Prints the chat prompt ids of a dialog, exactly as generation feeds them.");
  AddModelFlag(&flags, &args.model_path);
  flags.AddRequired("dialog", &args.dialog, "JSON array of {\"role\", \"content\"} messages");
  flags.AddOptional("max_prompt_tokens", &args.max_prompt_tokens,
            "drop the oldest turns to fit N ids (0: no limit); unset: the model's context - 1");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  if (absl::Status status = Tokenize(args, flags.Has("max_prompt_tokens")); !status.ok()) {
    return Fail("tokenize", status);
  }
  return 0;
}

}  // namespace

LLAMA_SUBCOMMAND(tokenize, "print the chat prompt ids of a dialog", RunTokenize);

}  // namespace llama::cli
