// `llama-chat generate --prompts FILE`: every prompt of the file (one per line, BOS + its ids) runs concurrently
// through the EngineLoop; one result line per prompt (the continuation only), in input order, on stdout
// (newlines in the text written as \n, backslashes as \\); statistics (steps, preemptions, tokens/s) on stderr.
// Flags: `llama-chat generate --help` (greedy and 128 tokens by default). Each prompt samples with seed S
// (counter-based, so a prompt's output does not depend on the others).
// cmd_generate.cc dispatches here when --prompts is given.
#pragma once

#include <string>

namespace llama::cli {

// The usage of this mode (its flags and their defaults), for `llama-chat generate --help`.
std::string GenerateBatchUsage();

// argv: the generate subcommand's arguments (program and subcommand names removed). Returns the exit code:
// 0 when every prompt finished without error.
int RunGenerateBatch(int argc, char** argv);

}  // namespace llama::cli
