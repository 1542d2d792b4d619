// Each llama-chat subcommand lives in its own file tools/cmd_<name>.cc and registers itself:
//   LLAMA_SUBCOMMAND(convert, "convert a llama2.c checkpoint to the Hugging Face layout", RunConvert);
// Run functions get argv without the program and subcommand names and return the process exit code.
#pragma once

#include <map>
#include <string>

namespace llama::cli {

using SubcommandFn = int (*)(int argc, char** argv);

struct Subcommand {
  SubcommandFn run;
  std::string help;
};

std::map<std::string, Subcommand>& Subcommands();

struct SubcommandRegistrar {
  SubcommandRegistrar(const char* name, const char* help, SubcommandFn fn) { Subcommands()[name] = {fn, help}; }
};

#define LLAMA_SUBCOMMAND(name, help, fn) \
  static ::llama::cli::SubcommandRegistrar llama_subcommand_##name(#name, help, fn)

}  // namespace llama::cli
