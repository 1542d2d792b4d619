// libllama_sentencepiece.so: the only code that includes <sentencepiece_processor.h> and links libsentencepiece
// (see sentencepiece_api.h for why it is a separate, deep-bound module). The reference for tests and benchmarks. No Abseil header may be included here.
#include <sentencepiece_processor.h>

#include <memory>

#include "engine/text/sentencepiece_api.h"

namespace llama {
namespace {

class SentencePieceImpl : public SentencePieceApi {
 public:
  bool Load(const std::string& serialized_model, std::string* error) {
    if (const auto status = sp_.LoadFromSerializedProto(serialized_model); !status.ok()) {
      *error = status.ToString();
      return false;
    }
    return true;
  }
  bool Encode(std::string_view text, std::vector<int>* ids) const override { return sp_.Encode(text, ids).ok(); }
  std::string DecodeIds(const std::vector<int>& ids) const override { return sp_.DecodeIds(ids); }
  int piece_size() const override { return sp_.GetPieceSize(); }
  const std::string& IdToPiece(int id) const override { return sp_.IdToPiece(id); }
  bool IsControl(int id) const override { return sp_.IsControl(id); }
  bool IsUnknown(int id) const override { return sp_.IsUnknown(id); }
  bool IsByte(int id) const override { return sp_.IsByte(id); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace
}  // namespace llama

extern "C" __attribute__((visibility("default"))) llama::SentencePieceApi* LlamaSentencePieceOpenProto(
    const std::string& serialized_model, std::string* error) {
  auto impl = std::make_unique<llama::SentencePieceImpl>();
  if (!impl->Load(serialized_model, error)) return nullptr;
  return impl.release();
}
