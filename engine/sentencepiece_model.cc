// No Abseil header may be included here (see sentencepiece_model.h).
#include "engine/sentencepiece_model.h"

#include <sentencepiece_processor.h>

namespace llama {

std::unique_ptr<SentencePieceModel> SentencePieceModel::Load(const std::string& model_path, std::string* error) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  if (const auto status = sp->Load(model_path); !status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  std::unique_ptr<SentencePieceModel> model(new SentencePieceModel());
  model->sp_ = std::move(sp);
  return model;
}

SentencePieceModel::~SentencePieceModel() = default;

bool SentencePieceModel::Encode(std::string_view text, std::vector<int>* ids) const {
  return sp_->Encode(text, ids).ok();
}

std::string SentencePieceModel::DecodeIds(const std::vector<int>& ids) const { return sp_->DecodeIds(ids); }

int SentencePieceModel::piece_size() const { return sp_->GetPieceSize(); }
const std::string& SentencePieceModel::IdToPiece(int id) const { return sp_->IdToPiece(id); }
bool SentencePieceModel::IsControl(int id) const { return sp_->IsControl(id); }
bool SentencePieceModel::IsUnknown(int id) const { return sp_->IsUnknown(id); }
bool SentencePieceModel::IsByte(int id) const { return sp_->IsByte(id); }
int SentencePieceModel::bos_id() const { return sp_->bos_id(); }
int SentencePieceModel::eos_id() const { return sp_->eos_id(); }

}  // namespace llama
