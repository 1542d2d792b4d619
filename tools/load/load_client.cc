#include "tools/load/load_client.h"

#include <sys/resource.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "tools/load/arrivals.h"

namespace llama::load {

namespace v1 = ::llamachat::v1;

double ProcessCpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1e-6 * (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

namespace {

// Waits until the channel is connected; false at once when the connection failed (refused: nothing listens).
bool Connect(grpc::Channel& channel, std::chrono::system_clock::time_point deadline) {
  for (grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true); state != GRPC_CHANNEL_READY;
       state = channel.GetState(true)) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    if (!channel.WaitForStateChange(state, deadline)) return false;
  }
  return true;
}

}  // namespace

// One Chat stream: StartCall → Read until the stream ends → Finish → the client's OnCallDone (which deletes it).
// Exactly one operation is pending at a time, so `this` is the tag of each.
class LoadClient::Call {
 public:
  Call(LoadClient* client, int worker, int64_t index, double scheduled_s)
      : client_(client), worker_(worker) {
    record_.index = index;
    record_.scheduled_s = scheduled_s;
  }

  void Start(v1::ChatService::Stub& stub, grpc::CompletionQueue* cq, double timeout_s) {
    start_ = Clock::now();
    record_.start_s = client_->SinceStart(start_);
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              std::chrono::duration<double>(timeout_s)));
    reader_ = stub.PrepareAsyncChat(&context_, client_->prompts_->at(record_.index), cq);
    reader_->StartCall(this);
  }

  // A client thread: the pending operation completed.
  void Proceed(bool ok) {
    switch (state_) {
      case State::kStarting:
      case State::kReading:
        if (state_ == State::kReading && ok) OnMessage(Clock::now());
        if (ok) {
          state_ = State::kReading;
          reader_->Read(&response_, this);
        } else {
          state_ = State::kFinishing;
          reader_->Finish(&status_, this);
        }
        return;
      case State::kFinishing:
        Done();
        return;
    }
  }

 private:
  enum class State { kStarting, kReading, kFinishing };
  using Clock = LoadClient::Clock;

  void OnMessage(Clock::time_point now) {
    const double since_start = std::chrono::duration<double>(now - start_).count();
    if (response_.has_delta()) {
      if (record_.num_deltas == 0) {
        record_.ttft_s = since_start;
      } else {
        record_.itl_s.push_back(std::chrono::duration<double>(now - last_delta_).count());
      }
      last_delta_ = now;
      ++record_.num_deltas;
      record_.streamed_token_ids += response_.delta().token_ids_size();
    } else if (response_.has_final()) {
      const v1::Final& final_message = response_.final();
      record_.has_final = true;
      record_.e2e_s = since_start;
      record_.prompt_tokens = final_message.usage().prompt_tokens();
      record_.output_tokens = final_message.usage().completion_tokens();
      record_.dropped_turns = final_message.dropped_turns();
      record_.finish_reason = final_message.finish_reason();
    }
  }

  void Done() {
    record_.code = status_.error_code();
    if (!status_.ok()) {
      record_.error = status_.error_message();
      record_.e2e_s = std::chrono::duration<double>(Clock::now() - start_).count();
    } else if (!record_.has_final) {
      // OK without a Final breaks the API contract; count it as a failure of its own kind.
      record_.code = grpc::StatusCode::INTERNAL;
      record_.error = "stream ended OK without a Final message";
    }
    LoadClient* client = client_;
    const int worker = worker_;
    RequestRecord record = std::move(record_);
    delete this;
    client->OnCallDone(worker, std::move(record));
  }

  LoadClient* const client_;
  const int worker_;
  State state_ = State::kStarting;
  Clock::time_point start_;
  Clock::time_point last_delta_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientAsyncReader<v1::ChatResponse>> reader_;
  v1::ChatResponse response_;
  grpc::Status status_;
  RequestRecord record_;
};

absl::StatusOr<std::unique_ptr<LoadClient>> LoadClient::Create(const std::string& server, int client_threads,
                                                               int channels, double timeout_s,
                                                               std::chrono::milliseconds connect_timeout) {
  if (client_threads < 1) return absl::InvalidArgumentError("client_threads must be >= 1");
  std::unique_ptr<LoadClient> client(new LoadClient());
  client->timeout_s_ = timeout_s;
  const int num_channels = channels > 0 ? channels : client_threads;
  for (int i = 0; i < num_channels; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own, as a separate client has
    args.SetMaxReceiveMessageSize(-1);
    client->channels_.push_back(grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
    client->stubs_.push_back(v1::ChatService::NewStub(client->channels_.back()));
  }
  const auto deadline = std::chrono::system_clock::now() + connect_timeout;
  for (auto& channel : client->channels_) {
    if (!Connect(*channel, deadline)) {
      client->connect_error_ =
          absl::StrCat("cannot connect to ", server, " (is llama-chat-server running there?)");
      break;
    }
  }
  for (int i = 0; i < client_threads; ++i) {
    client->queues_.push_back(std::make_unique<grpc::CompletionQueue>());
    grpc::CompletionQueue* cq = client->queues_.back().get();
    client->threads_.emplace_back([cq] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) static_cast<Call*>(tag)->Proceed(ok);
    });
  }
  return client;
}

LoadClient::~LoadClient() {
  for (auto& cq : queues_) cq->Shutdown();
  for (std::thread& t : threads_) t.join();
}

double LoadClient::SinceStart(Clock::time_point t) const {
  return std::chrono::duration<double>(t - level_start_).count();
}

void LoadClient::Issue(int worker, int64_t index, double scheduled_s) {
  counters_.issued.fetch_add(1, std::memory_order_relaxed);
  Call* call = new Call(this, worker, index, scheduled_s);
  const size_t channel = next_channel_.fetch_add(1, std::memory_order_relaxed) % stubs_.size();
  call->Start(*stubs_[channel], queues_[worker].get(), timeout_s_);
}

int64_t LoadClient::NextClosedLoopIndex() {
  if (!issuing_) return -1;
  const bool count_reached = plan_.num_requests > 0 && num_issued_ >= plan_.num_requests;
  const bool time_up = plan_.duration_s > 0 && SinceStart(Clock::now()) >= plan_.duration_s;
  if (count_reached || time_up) {
    issuing_ = false;
    return -1;
  }
  ++in_flight_;
  return plan_.first_index + num_issued_++;
}

void LoadClient::OnCallDone(int worker, RequestRecord record) {
  counters_.done.fetch_add(1, std::memory_order_relaxed);
  if (!record.ok()) counters_.failed.fetch_add(1, std::memory_order_relaxed);
  int64_t next = -1;
  const Clock::time_point now = Clock::now();
  {
    absl::MutexLock lock(&mu_);
    records_.push_back(std::move(record));
    --in_flight_;
    last_done_ = now;
    if (!plan_.open_loop()) next = NextClosedLoopIndex();
  }
  if (next >= 0) Issue(worker, next, SinceStart(now));
}

void LoadClient::RunOpenLoop(const LevelPlan& plan) {
  ArrivalProcess arrivals(plan.rate_per_s, plan.burstiness, plan.arrival_seed);
  double due_s = 0;
  for (int64_t i = 0;; ++i) {
    if (plan.num_requests > 0 && i >= plan.num_requests) break;
    if (plan.duration_s > 0 && due_s >= plan.duration_s) break;
    std::this_thread::sleep_until(level_start_ +
                                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(due_s)));
    {
      absl::MutexLock lock(&mu_);
      ++in_flight_;
      ++num_issued_;
    }
    Issue(static_cast<int>(i % queues_.size()), plan.first_index + i, due_s);
    due_s += arrivals.NextGapSeconds();
  }
  absl::MutexLock lock(&mu_);
  issuing_ = false;
}

LevelRun LoadClient::RunLevel(const LevelPlan& plan, const PromptSet& prompts) {
  counters_.issued = 0;
  counters_.done = 0;
  counters_.failed = 0;
  prompts_ = &prompts;
  plan_ = plan;
  const double cpu_before = ProcessCpuSeconds();
  level_start_ = Clock::now();
  std::vector<int64_t> first_wave;
  {
    absl::MutexLock lock(&mu_);
    CHECK_EQ(in_flight_, 0);
    records_.clear();
    num_issued_ = 0;
    issuing_ = true;
    last_done_ = level_start_;
    if (!plan.open_loop()) {
      for (int i = 0; i < plan.concurrency; ++i) {
        const int64_t index = NextClosedLoopIndex();
        if (index < 0) break;
        first_wave.push_back(index);
      }
    }
  }
  for (size_t i = 0; i < first_wave.size(); ++i) Issue(static_cast<int>(i % queues_.size()), first_wave[i], 0);
  if (plan.open_loop()) RunOpenLoop(plan);
  LevelRun run;
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](LoadClient* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) { return c->in_flight_ == 0 && !c->issuing_; },
        this));
    run.records = std::move(records_);
    records_.clear();
    run.wall_s = SinceStart(last_done_);
  }
  run.client_cpu_s = ProcessCpuSeconds() - cpu_before;
  return run;
}

}  // namespace llama::load
