// A std-only wrapper of sentencepiece::SentencePieceProcessor, which lives in a separately loaded module
// (see sentencepiece_api.h: Debian's libsentencepiece clashes with libprotobuf in one process). The reference our
// tokenizer is tested against (library engine_text_reference, tests and benchmarks only); the runtime never uses it.
// Why it exists: <sentencepiece_processor.h> declares `namespace absl { using std::string_view; }`, which clashes
// with Debian's Abseil (there absl::string_view is its own class, ABSL_OPTION_USE_STD_STRING_VIEW 0). So only
// sentencepiece_module.cc includes it, and neither that file nor this header includes any Abseil header.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llama {

class SentencePieceApi;

class SentencePieceModel {
 public:
  // From a serialized ModelProto (a tokenizer.model file's bytes). Null on failure, with the reason in *error.
  static std::unique_ptr<SentencePieceModel> FromSerializedProto(const std::string& serialized_model,
                                                                 std::string* error);
  ~SentencePieceModel();

  // False only when the model is not loaded (Load rules that out).
  bool Encode(std::string_view text, std::vector<int>* ids) const;
  std::string DecodeIds(const std::vector<int>& ids) const;

  int piece_size() const;
  const std::string& IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  int bos_id() const;
  int eos_id() const;

 private:
  SentencePieceModel() = default;
  std::unique_ptr<SentencePieceApi> sp_;
};

}  // namespace llama
