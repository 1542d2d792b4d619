#include "server/health_service.h"

#include "base/check.h"

namespace llama::server {

namespace health = ::grpc::health::v1;

// One Watch stream. Its fields are guarded by the service's mu_; response_ is only touched by whoever set
// write_in_flight_ (under mu_) until OnWriteDone.
class HealthService::Watcher : public grpc::ServerWriteReactor<health::HealthCheckResponse> {
 public:
  Watcher(HealthService* service, std::string name) : service_(service), name_(std::move(name)) {
    bool write = false;
    {
      absl::MutexLock lock(&service_->mu_);
      service_->watchers_.insert(this);
      write = PrepareWrite(service_->StatusOf(name_));
    }
    if (write) StartPreparedWrite();
  }

  // Under mu_: records the latest status; true when the caller must StartWrite (the write is then in flight).
  bool PrepareWrite(Status latest) ABSL_EXCLUSIVE_LOCKS_REQUIRED(service_->mu_) {
    latest_ = latest;
    if (write_in_flight_ || done_ || (has_sent_ && sent_ == latest_)) return false;
    write_in_flight_ = true;
    has_sent_ = true;
    sent_ = latest_;
    response_.set_status(latest_);
    return true;
  }

  const std::string& name() const { return name_; }
  // After a PrepareWrite that returned true, with mu_ released.
  void StartPreparedWrite() { StartWrite(&response_); }

  void OnWriteDone(bool ok) override {
    bool write = false;
    bool finish = false;
    {
      absl::MutexLock lock(&service_->mu_);
      write_in_flight_ = false;
      if (!ok) cancelled_ = true;
      finish = TakeFinish();
      if (!finish) write = PrepareWrite(latest_);
    }
    if (finish) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    if (write) StartWrite(&response_);
  }

  void OnCancel() override {
    bool finish = false;
    {
      absl::MutexLock lock(&service_->mu_);
      cancelled_ = true;
      finish = TakeFinish();
    }
    if (finish) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&service_->mu_);
      service_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  // Under mu_: a cancelled stream with no write in flight finishes, once.
  bool TakeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(service_->mu_) {
    if (!cancelled_ || write_in_flight_ || done_) return false;
    done_ = true;
    return true;
  }

  HealthService* const service_;
  const std::string name_;
  health::HealthCheckResponse response_;
  Status latest_ = health::HealthCheckResponse::UNKNOWN;
  Status sent_ = health::HealthCheckResponse::UNKNOWN;
  bool has_sent_ = false;
  bool write_in_flight_ = false;
  bool cancelled_ = false;
  bool done_ = false;  // Finish called
};

HealthService::HealthService(const std::vector<std::string>& services) {
  absl::MutexLock lock(&mu_);
  for (const std::string& service : services) statuses_[service] = health::HealthCheckResponse::NOT_SERVING;
}

HealthService::~HealthService() {
  absl::MutexLock lock(&mu_);
  CHECK(watchers_.empty());  // the gRPC server (which finishes every call) is gone first
}

HealthService::Status HealthService::StatusOf(const std::string& service) const {
  auto it = statuses_.find(service);
  return it == statuses_.end() ? health::HealthCheckResponse::SERVICE_UNKNOWN : it->second;
}

void HealthService::Update(const std::vector<std::string>& services, bool serving, bool force) {
  std::vector<Watcher*> to_write;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_ && !force) return;
    for (const std::string& service : services) {
      statuses_[service] = serving ? health::HealthCheckResponse::SERVING : health::HealthCheckResponse::NOT_SERVING;
    }
    for (Watcher* watcher : watchers_) {
      if (watcher->PrepareWrite(StatusOf(watcher->name()))) to_write.push_back(watcher);
    }
  }
  // Each has a write in flight now, so none is finished (and deleted) before its StartWrite.
  for (Watcher* watcher : to_write) watcher->StartPreparedWrite();
}

void HealthService::SetServingStatus(const std::string& service, bool serving) {
  Update({service}, serving, /*force=*/false);
}

void HealthService::SetServingStatus(bool serving) {
  std::vector<std::string> all;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, status] : statuses_) all.push_back(name);
  }
  Update(all, serving, /*force=*/false);
}

void HealthService::Shutdown() {
  std::vector<std::string> all;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (const auto& [name, status] : statuses_) all.push_back(name);
  }
  Update(all, /*serving=*/false, /*force=*/true);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const health::HealthCheckRequest* request,
                                               health::HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Status status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusOf(request->service());
  }
  if (status == health::HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service: " + request->service()));
    return reactor;
  }
  response->set_status(status);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<health::HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* /*context*/, const health::HealthCheckRequest* request) {
  return new Watcher(this, request->service());
}

}  // namespace llama::server
