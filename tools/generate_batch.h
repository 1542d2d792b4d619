// `llama-chat generate --prompts FILE`: every prompt of the file (one per line) runs concurrently through the
// EngineLoop on the CPU backend; one result line per prompt, in input order, on stdout (newlines in the text
// written as \n, backslashes as \\); statistics (steps, preemptions, tokens/s) on stderr.
// cmd_generate.cc dispatches here when --prompts is given.
#pragma once

namespace llama::cli {

// argv: the generate subcommand's arguments (program and subcommand names removed). Returns the exit code:
// 0 when every prompt finished without error.
int RunGenerateBatch(int argc, char** argv);

}  // namespace llama::cli
