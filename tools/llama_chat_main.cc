// llama-chat: one binary, one subcommand per file (see subcommands.h).
#include <cstdio>
#include <cstring>

#include "tools/subcommands.h"

namespace llama::cli {
std::map<std::string, Subcommand>& Subcommands() {
  static auto* commands = new std::map<std::string, Subcommand>();
  return *commands;
}
}  // namespace llama::cli

namespace {
void Usage(FILE* out) {
  std::fprintf(out, "usage: llama-chat <command> [flags]\n\ncommands:\n");
  for (const auto& [name, cmd] : llama::cli::Subcommands()) {
    std::fprintf(out, "  %-14s %s\n", name.c_str(), cmd.help.c_str());
  }
  std::fprintf(out, "\nllama-chat <command> --help lists the command's flags and their defaults.\n");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    Usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  auto& commands = llama::cli::Subcommands();
  auto it = commands.find(argv[1]);
  if (it == commands.end()) {
    std::fprintf(stderr, "llama-chat: unknown command '%s'\n\n", argv[1]);
    Usage(stderr);
    return 2;
  }
  return it->second.run(argc - 2, argv + 2);
}
