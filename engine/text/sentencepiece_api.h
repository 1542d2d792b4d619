// The interface to the SentencePiece reference module (engine/text/sentencepiece_module.cc). Not on the serving
// path: the runtime tokenizes with our own code (sentencepiece_bpe.h); this module is what the differential test
// (tests/engine/text/reference/) and tokenizer_bench compare it with, built only with LLAMA_SENTENCEPIECE_MODULE.
//
// Why a separate module: Debian's libsentencepiece.so carries and exports its own copy of protobuf-lite 3.14. In a
// process that also loads libprotobuf.so 3.21 (the server, the chat client) the two copies interpose each other's
// symbols and the process aborts at start-up. So libsentencepiece is never linked into any binary: the module
// libllama_sentencepiece.so links it and is dlopen'ed with RTLD_LOCAL | RTLD_DEEPBIND, which binds sentencepiece
// to its own protobuf copy and keeps it out of the global symbol scope. std-only, no Abseil (see
// sentencepiece_model.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llama {

class SentencePieceApi {
 public:
  virtual ~SentencePieceApi() = default;
  virtual bool Encode(std::string_view text, std::vector<int>* ids) const = 0;
  virtual std::string DecodeIds(const std::vector<int>& ids) const = 0;
  virtual int piece_size() const = 0;
  virtual const std::string& IdToPiece(int id) const = 0;
  virtual bool IsControl(int id) const = 0;
  virtual bool IsUnknown(int id) const = 0;
  virtual bool IsByte(int id) const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

// The module's one exported symbol: loads a model from its serialized ModelProto (a tokenizer.model file's bytes,
// or one assembled from a GGUF vocab), or returns null with the reason in *error.
using SentencePieceOpenFn = SentencePieceApi* (*)(const std::string& serialized_model, std::string* error);
inline constexpr char kSentencePieceOpenSymbol[] = "LlamaSentencePieceOpenProto";
inline constexpr char kSentencePieceModuleName[] = "libllama_sentencepiece.so";

}  // namespace llama
