// The one flag parser of the llama-chat subcommands. A subcommand declares each flag once, bound to the field it
// sets; the field's value before parsing is the flag's default, so defaults live in the option structs
// (CpuBackendOptions, GenerateOptions, ...) and nowhere else, and --help shows them:
//
//   CpuBackendOptions cpu;
//   FlagSet flags("bench", "--model_dir DIR [flags]", "single-stream decode tokens/s");
//   flags.Add("threads", &cpu.num_threads, "CPU backend threads (0: all cores)");
//   if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
//
// Syntax: --name value or --name=value; a bool flag alone (--name) means true, or --name=true|false. --help (or
// -h) prints the usage. Unknown flags, missing or malformed values, positional arguments and missing required
// flags are INVALID_ARGUMENT naming the flag.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <utility>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"

namespace llama::cli {

class FlagSet {
 public:
  // command: the subcommand ("generate"); synopsis: what follows it in the usage line; summary: one sentence.
  FlagSet(std::string command, std::string synopsis, std::string summary);
  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Declares --name bound to *target (which must outlive the FlagSet); *target is the default.
  void Add(const std::string& name, std::string* target, const std::string& help);
  void Add(const std::string& name, int* target, const std::string& help);
  void Add(const std::string& name, uint64_t* target, const std::string& help);
  void Add(const std::string& name, float* target, const std::string& help);
  void Add(const std::string& name, double* target, const std::string& help);
  void Add(const std::string& name, bool* target, const std::string& help);
  // A string flag that must be given (non-empty).
  void AddRequired(const std::string& name, std::string* target, const std::string& help);
  // --alias is another spelling of the declared flag --name (an older name kept working): it sets the same field,
  // and Has(name) and the required check count it.
  void AddAlias(const std::string& alias, const std::string& name);
  // A flag whose absence means something of its own (the help says what; Has tells): no default is shown.
  template <typename T>
  void AddOptional(const std::string& name, T* target, const std::string& help) {
    AddFlag(name, target, help, Kind::kOptional);
  }

  // Parses argv (the subcommand's arguments, without the program and subcommand names) into the targets.
  absl::Status Parse(int argc, char** argv);
  bool help_requested() const { return help_requested_; }
  // Whether --name was given (for flags whose absence means something: --seed, --kv_heads, ...).
  bool Has(const std::string& name) const { return given_.count(name) > 0; }

  // "usage: llama-chat <command> <synopsis>", the summary, and one line per flag with its default.
  std::string Usage() const;

  // Parse, then: --help prints Usage() to stdout and gives 0; an error prints "llama-chat <command>: <message>"
  // and where to find the flags to stderr and gives 2; nullopt means go on.
  std::optional<int> ParseOrExit(int argc, char** argv);

 private:
  using Target = std::variant<std::string*, int*, uint64_t*, float*, double*, bool*>;
  enum class Kind { kDefaulted, kRequired, kOptional };
  struct Flag {
    std::string name;
    Target target;
    std::string help;
    std::string default_text;
    Kind kind;
  };
  void AddFlag(const std::string& name, Target target, const std::string& help, Kind kind);
  const Flag* Find(const std::string& name) const;  // by name or alias
  absl::Status Set(const Flag& flag, const std::string& value);

  const std::string command_;
  const std::string synopsis_;
  const std::string summary_;
  std::vector<Flag> flags_;  // in declaration order (the usage lists them so)
  std::vector<std::pair<std::string, std::string>> aliases_;  // (alias, flag name)
  std::set<std::string> given_;
  bool help_requested_ = false;
};

// Prints "llama-chat <command>: <status message>" to stderr and returns 1 (a subcommand that failed at run time).
int Fail(const std::string& command, const absl::Status& status);
// The same for a command line that makes no sense (as ParseOrExit reports a parse error): also says where the flags
// are listed, and returns 2.
int UsageError(const std::string& command, const absl::Status& status);

}  // namespace llama::cli
