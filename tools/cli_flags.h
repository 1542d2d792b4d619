// A small command-line flag parser for llama-chat subcommands: --name value or --name=value, --flag for booleans.
// Unknown flags and malformed values are errors naming the flag.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace llama::cli {

class CliFlags {
 public:
  // known: flag names without "--"; bool_flags: those that take no value.
  static absl::StatusOr<CliFlags> Parse(int argc, char** argv, const std::set<std::string>& known,
                                        const std::set<std::string>& bool_flags = {});
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string GetString(const std::string& name, const std::string& def = "") const;
  absl::StatusOr<std::string> RequireString(const std::string& name) const;
  absl::StatusOr<int> GetInt(const std::string& name, int def) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double def) const;
  bool GetBool(const std::string& name) const { return Has(name); }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Prints "llama-chat <cmd>: <status message>" to stderr and returns 1 (for subcommand mains).
int Fail(const std::string& command, const absl::Status& status);

}  // namespace llama::cli
