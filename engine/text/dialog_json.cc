#include "engine/text/dialog_json.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "nlohmann/json.hpp"

namespace llama {
namespace {

using Json = nlohmann::json;

// A SAX handler that only records the parser's error message, so that malformed JSON becomes a Status naming the
// position without using exceptions.
class SyntaxErrorRecorder : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) override {
    message_ = error.what();
    return false;
  }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

absl::StatusOr<Role> ParseRole(const std::string& name, size_t index) {
  if (name == "system") return Role::kSystem;
  if (name == "user") return Role::kUser;
  if (name == "assistant") return Role::kAssistant;
  return absl::InvalidArgumentError(absl::StrCat("messages[", index, "].role: unknown role \"", name,
                                                 "\" (expected system, user or assistant)"));
}

absl::StatusOr<std::string> StringField(const Json& object, const char* field, size_t index) {
  const auto it = object.find(field);
  if (it == object.end()) {
    return absl::InvalidArgumentError(absl::StrCat("messages[", index, "].", field, ": missing"));
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages[", index, "].", field, ": expected a string, got ", it->type_name()));
  }
  return it->get<std::string>();
}

absl::StatusOr<Message> ParseMessage(const Json& element, size_t index) {
  if (!element.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("messages[", index, "]: expected an object, got ", element.type_name()));
  }
  for (const auto& [field, value] : element.items()) {
    if (field != "role" && field != "content") {
      // A typo such as "contents" must not silently send an empty message.
      return absl::InvalidArgumentError(absl::StrCat("messages[", index, "]: unknown field \"", field, "\""));
    }
  }
  Message message;
  ASSIGN_OR_RETURN(const std::string role, StringField(element, "role", index));
  ASSIGN_OR_RETURN(message.role, ParseRole(role, index));
  ASSIGN_OR_RETURN(message.content, StringField(element, "content", index));
  return message;
}

}  // namespace

absl::StatusOr<std::vector<Message>> ParseDialogJson(const std::string& json_text) {
  SyntaxErrorRecorder recorder;
  if (!Json::sax_parse(json_text, &recorder)) {
    return absl::InvalidArgumentError(absl::StrCat("dialog is not valid JSON: ", recorder.message()));
  }
  const Json root = Json::parse(json_text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!root.is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dialog: expected a JSON array of messages, got ", root.type_name()));
  }
  std::vector<Message> dialog;
  dialog.reserve(root.size());
  for (size_t i = 0; i < root.size(); ++i) {
    ASSIGN_OR_RETURN(Message message, ParseMessage(root[i], i));
    dialog.push_back(std::move(message));
  }
  return dialog;
}

}  // namespace llama
