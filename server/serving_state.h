// Health and drain: whether Chat admits new streams, what grpc.health.v1 reports, and how many streams are live.
//
//   starting ──MarkReady (after a warm-up forward)──▶ serving ──StartDrain (SIGTERM)──▶ draining
//   NOT_SERVING, Chat → UNAVAILABLE                   SERVING                           NOT_SERVING, Chat → UNAVAILABLE
//
// Thread-safe: Chat handlers call TryAdmit/Release on gRPC threads, main calls the transitions and WaitIdle.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/health_check_service_interface.h"

namespace llama::server {

class ServingState {
 public:
  enum class Phase { kStarting, kServing, kDraining };

  // max_streams: admitted streams live at once beyond which TryAdmit says RESOURCE_EXHAUSTED (0: no cap).
  explicit ServingState(int max_streams = 0) : max_streams_(max_streams) {}
  // The health service (HealthService, registered with the gRPC server before it is built): set to the current
  // phase, i.e. NOT_SERVING until MarkReady. health must outlive this object.
  void AttachHealth(grpc::HealthCheckServiceInterface* health);

  void MarkReady();   // kStarting → kServing; health SERVING
  void StartDrain();  // → kDraining; health NOT_SERVING for good (later updates are ignored)

  // Admits one stream (OK) or says why not (UNAVAILABLE; RESOURCE_EXHAUSTED at max_streams). Every OK must be
  // paired with one Release.
  absl::Status TryAdmit();
  void Release();

  // Blocks until no admitted stream is live or the timeout passes; true when idle.
  bool WaitIdle(absl::Duration timeout);

  Phase phase() const;
  int active_streams() const;

  // The health service names this server reports: "" (the whole server) and the ChatService.
  static const char* const kServiceName;

 private:
  void SetHealth(bool serving) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int max_streams_;
  mutable absl::Mutex mu_;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kStarting;
  int active_streams_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace llama::server
