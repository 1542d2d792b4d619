// No Abseil header may be included here (see sentencepiece_model.h).
#include "engine/text/sentencepiece_model.h"

#include <dlfcn.h>

#include <mutex>

#include "base/module_path.h"
#include "engine/text/sentencepiece_api.h"

namespace llama {
namespace {

// dlopen's the module once per process (it stays loaded). RTLD_DEEPBIND: see sentencepiece_api.h.
SentencePieceOpenFn OpenModule(std::string* error) {
  static std::once_flag once;
  static SentencePieceOpenFn open_fn = nullptr;
  static std::string open_error;
  std::call_once(once, [] {
#ifdef LLAMA_SENTENCEPIECE_MODULE_PATH
    const char* build_tree_path = LLAMA_SENTENCEPIECE_MODULE_PATH;
#else
    const char* build_tree_path = nullptr;
#endif
    for (const std::string& candidate : ModuleCandidates(kSentencePieceModuleName, build_tree_path)) {
      void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (handle == nullptr) {
        open_error += std::string(dlerror()) + "; ";
        continue;
      }
      open_fn = reinterpret_cast<SentencePieceOpenFn>(dlsym(handle, kSentencePieceOpenSymbol));
      if (open_fn != nullptr) return;
      open_error += candidate + ": no symbol " + kSentencePieceOpenSymbol + "; ";
    }
  });
  if (open_fn == nullptr) *error = "cannot load the SentencePiece module: " + open_error;
  return open_fn;
}

}  // namespace

std::unique_ptr<SentencePieceModel> SentencePieceModel::FromSerializedProto(const std::string& serialized_model,
                                                                         std::string* error) {
  SentencePieceOpenFn open_fn = OpenModule(error);
  if (open_fn == nullptr) return nullptr;
  std::unique_ptr<SentencePieceApi> sp(open_fn(serialized_model, error));
  if (sp == nullptr) return nullptr;
  std::unique_ptr<SentencePieceModel> model(new SentencePieceModel());
  model->sp_ = std::move(sp);
  return model;
}

SentencePieceModel::~SentencePieceModel() = default;

bool SentencePieceModel::Encode(std::string_view text, std::vector<int>* ids) const { return sp_->Encode(text, ids); }
std::string SentencePieceModel::DecodeIds(const std::vector<int>& ids) const { return sp_->DecodeIds(ids); }
int SentencePieceModel::piece_size() const { return sp_->piece_size(); }
const std::string& SentencePieceModel::IdToPiece(int id) const { return sp_->IdToPiece(id); }
bool SentencePieceModel::IsControl(int id) const { return sp_->IsControl(id); }
bool SentencePieceModel::IsUnknown(int id) const { return sp_->IsUnknown(id); }
bool SentencePieceModel::IsByte(int id) const { return sp_->IsByte(id); }
int SentencePieceModel::bos_id() const { return sp_->bos_id(); }
int SentencePieceModel::eos_id() const { return sp_->eos_id(); }

}  // namespace llama
