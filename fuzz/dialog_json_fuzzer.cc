// Dialog JSON (engine/text/dialog_json.h): any bytes either parse into messages or give INVALID_ARGUMENT; a parsed
// dialog's role checks (ValidateDialog) then run on it. Sanitizers catch memory and UB errors; the target asserts
// that a refusal is INVALID_ARGUMENT with a message, and that every parsed message has a known role.
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/text/chat_prompt.h"
#include "engine/text/dialog_json.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto dialog = llama::ParseDialogJson(text);
  if (!dialog.ok()) {
    if (!absl::IsInvalidArgument(dialog.status()) || dialog.status().message().empty()) {
      llama::fuzz::Fail("ParseDialogJson refused with " + dialog.status().ToString());
    }
    return 0;
  }
  for (const llama::Message& message : *dialog) {
    if (message.role != llama::Role::kSystem && message.role != llama::Role::kUser &&
        message.role != llama::Role::kAssistant) {
      llama::fuzz::Fail("a parsed message has an unknown role");
    }
  }
  absl::Status valid = llama::ValidateDialog(*dialog);
  if (!valid.ok() && !absl::IsInvalidArgument(valid)) llama::fuzz::Fail("ValidateDialog: " + valid.ToString());
  return 0;
}
