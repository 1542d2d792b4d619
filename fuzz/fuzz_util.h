// Shared by the fuzz targets (fuzz/README.md): a fuzz input as a file the readers can open, the tokenizer the text
// targets use, and the one way a target reports a broken property (print, then abort: libFuzzer keeps the input).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "engine/text/tokenizer.h"

namespace llama::fuzz {

// A property the target asserts does not hold: this is a finding, not an uninteresting input.
[[noreturn]] inline void Fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ PROPERTY VIOLATED: %s\n", what.c_str());
  std::abort();
}

// The fuzz input as an anonymous in-memory file (memfd), opened through /proc/self/fd/N: the readers only take
// paths, and a memfd needs no temporary directory and no cleanup when the target dies.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes) {
    fd_ = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd_ < 0) Fail("memfd_create failed");
    for (size_t done = 0; done < bytes.size();) {
      ssize_t n = write(fd_, bytes.data() + done, bytes.size() - done);
      if (n <= 0) Fail("memfd write failed");
      done += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// The LLaMA 2 tokenizer.model the text targets use: $LLAMA_FUZZ_TOKENIZER, else the one `make model` puts in
// models/.cache/. Loaded once; a missing file stops the target at start (never a silent no-op run).
inline const Tokenizer& FuzzTokenizer() {
  static const Tokenizer* tokenizer = [] {
    const char* env = std::getenv("LLAMA_FUZZ_TOKENIZER");
    const std::string path = env != nullptr ? env : LLAMA_SOURCE_DIR "/models/.cache/tokenizer.model";
    auto loaded = Tokenizer::Load(path);
    if (!loaded.ok()) Fail("cannot load the tokenizer (" + path + "): " + std::string(loaded.status().message()));
    return loaded->release();
  }();
  return *tokenizer;
}

}  // namespace llama::fuzz
