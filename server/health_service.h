// HealthService: grpc.health.v1.Health (Check and Watch) implemented on the code generated from the standard
// health.proto (apt grpc-proto, compiled by proto/CMakeLists.txt), instead of gRPC's built-in default health service.
//
// Why not the built-in one: it answers from its own hand-written encoding, so the health.proto descriptor is never
// in the pool server reflection reads, and generic clients (grpcurl, buf curl) that resolve every listed service
// fail on it (issue 17). It also starts SERVING when the server is built, leaving a window before the server can
// set NOT_SERVING. This one is a plain registered service: its descriptor comes with the generated code, and every
// service it knows starts NOT_SERVING at construction, before the gRPC server exists.
//
// It implements grpc::HealthCheckServiceInterface, so ServingState drives it as it drove the default service:
// SetServingStatus per service or for all, Shutdown pins every service NOT_SERVING and ignores later updates.
// Check of an unknown service is NOT_FOUND; Watch sends the current status (SERVICE_UNKNOWN for an unknown service)
// and then every change, and ends when the client cancels or the server shuts down.
//
// Threading: the setters from any thread; Check/Watch and the watchers' reactions on gRPC threads. One mutex guards
// the statuses and every watcher's state. StartWrite/Finish are called with it released (gRPC may run a reaction
// inline); a watcher with a write in flight is never finished, so it cannot be deleted before StartWrite is called.
// The object must outlive the gRPC server it is registered with.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"

namespace llama::server {

class HealthService : public grpc::health::v1::Health::CallbackService, public grpc::HealthCheckServiceInterface {
 public:
  // The services Check/Watch know ("" is the whole server); all start NOT_SERVING.
  explicit HealthService(const std::vector<std::string>& services);
  ~HealthService() override;

  // grpc::HealthCheckServiceInterface.
  void SetServingStatus(const std::string& service, bool serving) override ABSL_LOCKS_EXCLUDED(mu_);
  void SetServingStatus(bool serving) override ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() override ABSL_LOCKS_EXCLUDED(mu_);

  // grpc.health.v1.Health.
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context, const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  Status StatusOf(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the statuses (and tells the watchers) unless shut down; force: Shutdown's own update.
  void Update(const std::vector<std::string>& services, bool serving, bool force) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Status> statuses_ ABSL_GUARDED_BY(mu_);
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace llama::server
