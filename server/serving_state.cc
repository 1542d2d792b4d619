#include "server/serving_state.h"

#include "absl/strings/str_cat.h"
#include "base/check.h"

namespace llama::server {

const char* const ServingState::kServiceName = "llamachat.v1.ChatService";

void ServingState::AttachHealth(grpc::HealthCheckServiceInterface* health) {
  absl::MutexLock lock(&mu_);
  health_ = health;
  if (phase_ == Phase::kDraining) {
    if (health_ != nullptr) health_->Shutdown();
    return;
  }
  SetHealth(phase_ == Phase::kServing);
}

void ServingState::SetHealth(bool serving) {
  if (health_ == nullptr) return;
  health_->SetServingStatus(serving);
  health_->SetServingStatus(kServiceName, serving);
}

void ServingState::MarkReady() {
  absl::MutexLock lock(&mu_);
  if (phase_ != Phase::kStarting) return;  // a drain that began during warm-up wins
  phase_ = Phase::kServing;
  SetHealth(true);
}

void ServingState::StartDrain() {
  absl::MutexLock lock(&mu_);
  phase_ = Phase::kDraining;
  SetHealth(false);
  // Shutdown() pins every service at NOT_SERVING and ignores later updates.
  if (health_ != nullptr) health_->Shutdown();
}

absl::Status ServingState::TryAdmit() {
  absl::MutexLock lock(&mu_);
  switch (phase_) {
    case Phase::kStarting: return absl::UnavailableError("server is warming up");
    case Phase::kDraining: return absl::UnavailableError("server is draining");
    case Phase::kServing: break;
  }
  if (max_streams_ > 0 && active_streams_ >= max_streams_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("too many concurrent streams: ", active_streams_, " live (--max_concurrent_streams ",
                     max_streams_, ")"));
  }
  ++active_streams_;
  return absl::OkStatus();
}

void ServingState::Release() {
  absl::MutexLock lock(&mu_);
  CHECK_GT(active_streams_, 0);
  --active_streams_;
}

bool ServingState::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return active_streams_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

ServingState::Phase ServingState::phase() const {
  absl::MutexLock lock(&mu_);
  return phase_;
}

int ServingState::active_streams() const {
  absl::MutexLock lock(&mu_);
  return active_streams_;
}

}  // namespace llama::server
