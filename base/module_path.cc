#include "base/module_path.h"

#include <unistd.h>

#include <climits>

namespace llama {

std::string ExecutableDir() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "";
  const std::string exe(path, n);
  const size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash);
}

std::vector<std::string> ModuleCandidates(const std::string& file_name, const char* build_tree_path) {
  std::vector<std::string> candidates = {ExecutableDir() + "/" + file_name};
  if (build_tree_path != nullptr) candidates.push_back(build_tree_path);
  candidates.push_back(file_name);
  return candidates;
}

}  // namespace llama
