// Where a run-time module (a shared object the build puts beside the binaries and that is dlopen'ed, never linked:
// the SentencePiece module, the CUDA plugin) may be, in the order to try. std only, no Abseil: the SentencePiece
// loader may include no Abseil header (engine/text/sentencepiece_model.h).
#pragma once

#include <string>
#include <vector>

namespace llama {

// Directory of the running executable, "" when unknown.
std::string ExecutableDir();

// file_name next to the running executable, then build_tree_path (the build's own copy, for binaries run from
// elsewhere; skipped when null), then the bare file_name (the loader's search path, installed libraries).
std::vector<std::string> ModuleCandidates(const std::string& file_name, const char* build_tree_path);

}  // namespace llama
