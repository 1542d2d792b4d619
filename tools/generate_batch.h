// `llama-chat generate --prompts FILE`: every prompt of the file (one per line, BOS + its ids) runs concurrently
// through the EngineLoop; one result line per prompt (the continuation only), in input order, on stdout
// (newlines in the text written as \n, backslashes as \\); statistics (steps, preemptions, tokens/s) on stderr.
// Flags: --model_dir DIR --prompts FILE [--num_kv_blocks N] [--max_num_batched_tokens N] [--max_num_seqs N]
// [--max_tokens N (128)] [--temperature T (0 = greedy)] [--top_p P] [--top_k K] [--repetition_penalty R]
// [--seed S] [--num_threads N] [--backend cpu|cuda] [--dtype bf16|fp16|fp32]. Each prompt samples with seed S
// (counter-based, so a prompt's output does not depend on the others).
// cmd_generate.cc dispatches here when --prompts is given.
#pragma once

namespace llama::cli {

// argv: the generate subcommand's arguments (program and subcommand names removed). Returns the exit code:
// 0 when every prompt finished without error.
int RunGenerateBatch(int argc, char** argv);

}  // namespace llama::cli
