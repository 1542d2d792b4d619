#include "tools/cli_flags.h"

#include <cstdio>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/check.h"

namespace llama::cli {
namespace {

// The default as --help shows it, and the placeholder of the value.
struct Describe {
  std::string operator()(std::string* v) const { return v->empty() ? "" : absl::StrCat("\"", *v, "\""); }
  std::string operator()(int* v) const { return absl::StrCat(*v); }
  std::string operator()(uint64_t* v) const { return absl::StrCat(*v); }
  std::string operator()(float* v) const { return absl::StrCat(*v); }
  std::string operator()(double* v) const { return absl::StrCat(*v); }
  std::string operator()(bool* v) const { return *v ? "true" : "false"; }
};
struct Placeholder {
  const char* operator()(std::string*) const { return "TEXT"; }
  const char* operator()(int*) const { return "N"; }
  const char* operator()(uint64_t*) const { return "N"; }
  const char* operator()(float*) const { return "X"; }
  const char* operator()(double*) const { return "X"; }
  const char* operator()(bool*) const { return ""; }
};

absl::Status BadValue(const std::string& name, const char* kind, const std::string& value) {
  return absl::InvalidArgumentError(absl::StrCat("--", name, " must be ", kind, ", got '", value, "'"));
}

}  // namespace

FlagSet::FlagSet(std::string command, std::string synopsis, std::string summary)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), summary_(std::move(summary)) {}

void FlagSet::AddFlag(const std::string& name, Target target, const std::string& help, Kind kind) {
  CHECK(Find(name) == nullptr);  // each flag is declared once
  flags_.push_back(Flag{name, target, help, std::visit(Describe{}, target), kind});
}

void FlagSet::Add(const std::string& name, std::string* target, const std::string& help) {
  AddFlag(name, target, help, Kind::kDefaulted);
}
void FlagSet::Add(const std::string& name, int* target, const std::string& help) { AddFlag(name, target, help, Kind::kDefaulted); }
void FlagSet::Add(const std::string& name, uint64_t* target, const std::string& help) {
  AddFlag(name, target, help, Kind::kDefaulted);
}
void FlagSet::Add(const std::string& name, float* target, const std::string& help) {
  AddFlag(name, target, help, Kind::kDefaulted);
}
void FlagSet::Add(const std::string& name, double* target, const std::string& help) {
  AddFlag(name, target, help, Kind::kDefaulted);
}
void FlagSet::Add(const std::string& name, bool* target, const std::string& help) { AddFlag(name, target, help, Kind::kDefaulted); }
void FlagSet::AddRequired(const std::string& name, std::string* target, const std::string& help) {
  AddFlag(name, target, help, Kind::kRequired);
}

void FlagSet::AddAlias(const std::string& alias, const std::string& name) {
  CHECK(Find(alias) == nullptr && Find(name) != nullptr);  // a new spelling of a declared flag
  aliases_.emplace_back(alias, name);
}

const FlagSet::Flag* FlagSet::Find(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  for (const auto& [alias, target] : aliases_) {
    if (alias == name) return Find(target);
  }
  return nullptr;
}

absl::Status FlagSet::Set(const Flag& flag, const std::string& value) {
  const std::string& name = flag.name;
  return std::visit(
      [&](auto* target) -> absl::Status {
        using T = std::remove_pointer_t<decltype(target)>;
        if constexpr (std::is_same_v<T, std::string>) {
          *target = value;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (value == "true" || value == "1") {
            *target = true;
          } else if (value == "false" || value == "0") {
            *target = false;
          } else {
            return BadValue(name, "true or false", value);
          }
        } else if constexpr (std::is_same_v<T, int>) {
          if (!absl::SimpleAtoi(value, target)) return BadValue(name, "an integer", value);
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          if (!absl::SimpleAtoi(value, target)) return BadValue(name, "a non-negative integer", value);
        } else if constexpr (std::is_same_v<T, float>) {
          if (!absl::SimpleAtof(value, target)) return BadValue(name, "a number", value);
        } else {
          if (!absl::SimpleAtod(value, target)) return BadValue(name, "a number", value);
        }
        return absl::OkStatus();
      },
      flag.target);
}

absl::Status FlagSet::Parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") help_requested_ = true;
  }
  if (help_requested_) return absl::OkStatus();
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Flag* flag = Find(name);
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!value.has_value()) {
      if (std::holds_alternative<bool*>(flag->target)) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status st = Set(*flag, *value); !st.ok()) return st;
    given_.insert(flag->name);
  }
  for (const Flag& flag : flags_) {
    if (flag.kind == Kind::kRequired && (!Has(flag.name) || std::get<std::string*>(flag.target)->empty())) {
      return absl::InvalidArgumentError(absl::StrCat("missing required flag --", flag.name));
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: llama-chat ", command_, " ", synopsis_, "\n", summary_, "\n\nflags:\n");
  for (const Flag& f : flags_) {
    const char* placeholder = std::visit(Placeholder{}, f.target);
    const std::string spelled = absl::StrCat("--", f.name, *placeholder ? " " : "", placeholder);
    std::string note;
    if (f.kind == Kind::kRequired) note = " (required)";
    if (f.kind == Kind::kDefaulted && !f.default_text.empty()) note = absl::StrCat(" (default: ", f.default_text, ")");
    absl::StrAppendFormat(&out, "  %-28s %s%s\n", spelled, f.help, note);
    for (const auto& [alias, target] : aliases_) {
      if (target == f.name) absl::StrAppendFormat(&out, "  %-28s same as --%s\n", absl::StrCat("--", alias, " ", placeholder), f.name);
    }
  }
  return out;
}

std::optional<int> FlagSet::ParseOrExit(int argc, char** argv) {
  const absl::Status status = Parse(argc, argv);
  if (help_requested_) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  if (!status.ok()) return UsageError(command_, status);
  return std::nullopt;
}

int UsageError(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "llama-chat %s: %s\n(llama-chat %s --help lists the flags)\n", command.c_str(),
               std::string(status.message()).c_str(), command.c_str());
  return 2;
}

int Fail(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "llama-chat %s: %s\n", command.c_str(), std::string(status.message()).c_str());
  return 1;
}

}  // namespace llama::cli
