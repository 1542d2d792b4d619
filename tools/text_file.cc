#include "tools/text_file.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace llama::cli {

absl::StatusOr<std::string> ReadTextFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--", flag, " ", path, ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace llama::cli
