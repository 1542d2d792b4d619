// Reading the text files the llama-chat subcommands take (--dialog, --prompts, --data, --eval).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace llama::cli {

// The whole file; NOT_FOUND "--<flag> <path>: cannot open" when it cannot be read.
absl::StatusOr<std::string> ReadTextFile(const std::string& flag, const std::string& path);

}  // namespace llama::cli
