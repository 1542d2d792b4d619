// InterceptingBackend: a Backend that forwards every call to another one after running a test's hook on the input.
// The hook may record the input, sleep, block, or return an error, which then fails that Forward instead (a
// failing or slow reward model, a log of which steps ran). Test-only (tests/support).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "engine/backend.h"

namespace llama::testing {

class InterceptingBackend : public Backend {
 public:
  using Hook = std::function<absl::Status(const ForwardInput& input)>;

  InterceptingBackend(std::unique_ptr<Backend> inner, Hook hook, std::string name)
      : inner_(std::move(inner)), hook_(std::move(hook)), name_(std::move(name)) {}

  const ModelConfig& config() const override { return inner_->config(); }
  const KvCacheSpec& kv_cache() const override { return inner_->kv_cache(); }
  std::string name() const override { return name_; }
  absl::Status Forward(const ForwardInput& input, ForwardOutput* output) override {
    if (absl::Status status = hook_(input); !status.ok()) return status;
    return inner_->Forward(input, output);
  }

 private:
  std::unique_ptr<Backend> inner_;
  Hook hook_;
  std::string name_;
};

}  // namespace llama::testing
