#include "server/chat_reactor.h"

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/utf8.h"
#include "server/status_mapping.h"

namespace llama::server {
namespace {

namespace v1 = ::llamachat::v1;

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kSafety: return v1::FINISH_REASON_SAFETY;
    case FinishReason::kCancelled: return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kDeadline: return v1::FINISH_REASON_DEADLINE;
    case FinishReason::kError: return v1::FINISH_REASON_ERROR;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(250);

// gRPC reports "no deadline" as the far end of system_clock; anything beyond a year out is treated as none.
absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

// Forwards the engine's callbacks to the reactor. The reactor outlives every call: it finishes only after OnFinish.
class ChatReactor::Sink : public RequestSink {
 public:
  explicit Sink(ChatReactor* reactor) : reactor_(reactor) {}
  void OnTokens(absl::Span<const int32_t> token_ids, std::string_view text) override {
    reactor_->OnEngineTokens(token_ids, text);
  }
  void OnFinish(const FinishInfo& info) override { reactor_->OnEngineFinish(info); }

 private:
  ChatReactor* const reactor_;
};

ChatReactor::ChatReactor(const ChatDeps& deps, grpc::CallbackServerContext* context, const v1::ChatRequest& request,
                         const absl::Status& parsed, uint64_t request_id, uint64_t fallback_seed)
    : deps_(deps), request_id_(request_id), context_(context) {
  const absl::Time arrival = absl::Now();
  client_request_id_ = request.request_id();  // logged as sent (escaped), even when it is refused below
  peer_ = context->peer();
  if (deps_.debug_leak_bytes_per_request > 0) {
    // Deliberately never freed (the soak check's own test); memset makes the pages resident.
    char* leaked = new char[deps_.debug_leak_bytes_per_request];
    std::memset(leaked, 0x5A, deps_.debug_leak_bytes_per_request);
  }
  if (absl::Status admit = deps_.serving->TryAdmit(); !admit.ok()) {
    FinishNow(admit);
    return;
  }
  admitted_ = true;
  if (!parsed.ok()) {
    FinishNow(parsed);
    return;
  }
  absl::StatusOr<PreparedChat> prepared =
      PrepareChatRequest(request, deps_.limits, *deps_.tokenizer, fallback_seed);
  if (!prepared.ok()) {
    FinishNow(prepared.status());
    return;
  }
  include_token_ids_ = request.include_token_ids();
  dropped_turns_ = prepared->dropped_turns;
  deadline_ = DeadlineOf(*context);
  GenerationRequest generation = std::move(prepared->request);
  generation.id = request_id_;
  generation.deadline = deadline_;
  generation.arrival = arrival;
  // submitted_ is set before Submit: the engine may call OnFinish before Submit returns.
  submitted_ = true;
  if (absl::Status status = deps_.engine->Submit(std::move(generation), std::make_shared<Sink>(this)); !status.ok()) {
    submitted_ = false;
    FinishNow(status);
  }
}

void ChatReactor::FinishNow(const absl::Status& status) {
  const grpc::Status grpc_status = ToGrpcStatus(status);
  {
    absl::MutexLock lock(&mu_);
    finish_called_ = true;
  }
  RecordOutcome(grpc_status, nullptr);
  Finish(grpc_status);
}

void ChatReactor::RecordOutcome(const grpc::Status& status, const FinishInfo* info) {
  deps_.metrics->RecordChatOutcome(status, info != nullptr ? info->reason : FinishReason::kError);
  if (deps_.log == nullptr) return;
  RequestLogEntry entry;
  entry.time = absl::Now();
  entry.id = request_id_;
  entry.request_id = client_request_id_;
  entry.peer = peer_;
  entry.code = GrpcCodeName(status.error_code());
  entry.message = status.error_message();
  if (info != nullptr) {
    entry.finish_reason = FinishReasonName(info->reason);
    entry.prompt_tokens = info->prompt_tokens;
    entry.completion_tokens = info->completion_tokens;
    entry.cached_prompt_tokens = info->cached_prompt_tokens;
    entry.num_candidates = info->num_candidates;
    entry.queue_time_s = info->queue_time_s;
    entry.time_to_first_token_s = info->time_to_first_token_s;
    entry.total_time_s = info->total_time_s;
  }
  deps_.log->Write(entry);
}

void ChatReactor::OnEngineTokens(absl::Span<const int32_t> token_ids, std::string_view text) {
  const absl::Time now = absl::Now();
  if (last_tokens_time_ != absl::Time()) {
    deps_.metrics->RecordInterTokenLatency(absl::ToDoubleSeconds(now - last_tokens_time_));
  }
  last_tokens_time_ = now;
  bool drop = false;
  {
    absl::MutexLock lock(&mu_);
    if (stream_broken_ || dropped_) return;  // nobody is reading; the engine's OnFinish will follow the cancel
    pending_text_.append(text.data(), text.size());
    if (include_token_ids_) pending_ids_.Add(token_ids.begin(), token_ids.end());
    const size_t pending_bytes = pending_text_.size() + pending_ids_.size() * sizeof(int32_t);
    drop = deps_.max_pending_bytes > 0 && pending_bytes > static_cast<size_t>(deps_.max_pending_bytes);
    if (drop) {
      // The write in flight has not completed while this much piled up behind it: the client is not reading.
      dropped_ = true;
      pending_text_.clear();
      pending_ids_.Clear();
    }
  }
  if (drop) {
    deps_.engine->Cancel(request_id_, absl::ResourceExhaustedError(absl::StrCat(
                                          "client not reading: more than ", deps_.max_pending_bytes,
                                          " bytes of the reply waiting to be sent (--max_stream_pending_bytes)")));
    return;
  }
  ScheduleWrite(/*wake_now=*/false);  // the writer runs the step's streams when the step ends
}

void ChatReactor::OnEngineFinish(const FinishInfo& info) {
  deps_.metrics->RecordEngineFinish(info);
  {
    absl::MutexLock lock(&mu_);
    finish_ = info;
  }
  ScheduleWrite(/*wake_now=*/true);  // a finish may come outside a step (cancel, deadline, shutdown)
}

void ChatReactor::ScheduleWrite(bool wake_now) {
  {
    absl::MutexLock lock(&mu_);
    if (write_in_flight_ || scheduled_ || finish_called_) return;  // OnWriteDone or the writer will see it
    scheduled_ = true;
  }
  // Safe after the unlock: while scheduled_ nobody else finishes (and so deletes) this reactor.
  deps_.writer->Schedule(this, wake_now);
}

void ChatReactor::OnWriterTurn() { Pump(/*from_writer=*/true); }

void ChatReactor::OnWriteDone(bool ok) {
  deps_.writer->WriteEnded(this);
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok) stream_broken_ = true;
  }
  Pump(/*from_writer=*/false);
}

void ChatReactor::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    stream_broken_ = true;
  }
  if (submitted_) {
    // The client's deadline timer fires a little before ours (our deadline was computed from the grpc-timeout
    // header on arrival) and reaches us as a plain cancel; within kDeadlineSlack of the deadline it counts as one.
    const absl::Status reason = absl::Now() >= deadline_ - kDeadlineSlack
                                    ? absl::DeadlineExceededError("deadline exceeded")
                                    : absl::CancelledError("cancelled by the client");
    deps_.engine->Cancel(request_id_, reason);
  }
  Pump(/*from_writer=*/false);
}

void ChatReactor::OnWriteStalled() {
  absl::Status status = absl::ResourceExhaustedError(
      absl::StrCat("client not reading: a write outstanding for more than ",
                   absl::FormatDuration(deps_.writer->stall_timeout()), " (--stream_stall_timeout_s)"));
  bool cancel_engine = false;
  {
    absl::MutexLock lock(&mu_);
    stall_status_ = status;
    cancel_engine = submitted_ && !finish_.has_value();
  }
  if (cancel_engine) deps_.engine->Cancel(request_id_, status);
  // The write fails, OnCancel and OnWriteDone follow (perhaps inline, here): nothing touches `this` after this.
  context_->TryCancel();
}

void ChatReactor::OnDone() {
  deps_.writer->WriteEnded(this);  // a stalled StartWriteAndFinish ends here
  if (admitted_) deps_.serving->Release();
  delete this;
}

ChatReactor::Next ChatReactor::NextMessage() {
  if (stream_broken_) return Next::kNothing;
  if (!pending_text_.empty() || !pending_ids_.empty()) {
    v1::Delta* delta = response_.mutable_delta();
    // The engine emits whole UTF-8 characters; this guard keeps a bug there from breaking the client's parser.
    if (utf8::IsValid(pending_text_)) {
      delta->mutable_text()->swap(pending_text_);
    } else {
      delta->set_text(utf8::ReplaceEachInvalidRun(pending_text_));
    }
    delta->mutable_token_ids()->Swap(&pending_ids_);
    pending_text_.clear();
    pending_ids_.Clear();
    return Next::kDelta;
  }
  if (!finish_.has_value() || final_written_ || !finish_->status.ok()) return Next::kNothing;
  v1::Final* final_message = response_.mutable_final();
  final_message->set_finish_reason(ToProto(finish_->reason));
  final_message->mutable_usage()->set_prompt_tokens(finish_->prompt_tokens);
  final_message->mutable_usage()->set_completion_tokens(finish_->completion_tokens);
  final_message->mutable_usage()->set_cached_prompt_tokens(finish_->cached_prompt_tokens);
  final_message->set_safety_score(finish_->safety_score);
  final_message->set_helpfulness_score(finish_->helpfulness_score);
  final_message->set_min_segment_score(finish_->min_segment_score);
  final_message->set_num_segments(finish_->num_segments);
  final_message->set_num_candidates(finish_->num_candidates);
  final_message->set_time_to_first_token_s(finish_->time_to_first_token_s);
  final_message->set_total_time_s(finish_->total_time_s);
  final_message->set_queue_time_s(finish_->queue_time_s);
  final_message->set_dropped_turns(dropped_turns_);
  final_message->set_request_id(client_request_id_);
  final_written_ = true;
  return Next::kFinal;
}

grpc::Status ChatReactor::FinalStatus() const {
  if (!stall_status_.ok()) return ToGrpcStatus(stall_status_);  // the outcome the writer decided
  if (!finish_->status.ok()) return ToGrpcStatus(finish_->status);
  // The engine finished but the client did not get the Final message.
  if (stream_broken_ && !final_written_) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
  return grpc::Status::OK;
}

void ChatReactor::Pump(bool from_writer) {
  enum class Action { kNone, kWrite, kWriteAndFinish, kFinish } action = Action::kNone;
  grpc::Status status;
  FinishInfo info;
  {
    absl::MutexLock lock(&mu_);
    if (from_writer) {
      scheduled_ = false;
    } else if (scheduled_) {
      return;  // the writer's turn comes; it alone may finish a queued stream
    }
    if (write_in_flight_ || finish_called_) return;
    const Next next = NextMessage();
    if (next == Next::kDelta) {
      write_in_flight_ = true;
      action = Action::kWrite;
    } else if (next == Next::kFinal || finish_.has_value()) {
      finish_called_ = true;
      status = FinalStatus();
      info = *finish_;
      action = next == Next::kFinal ? Action::kWriteAndFinish : Action::kFinish;
    }
  }
  // Outside mu_: gRPC may run reactions on other threads as soon as these are called, and after a finish the
  // reactor may already be deleted (OnDone), so nothing touches `this` afterwards.
  switch (action) {
    case Action::kNone:
      return;
    case Action::kWrite:
      deps_.writer->WriteStarted(this);
      StartWrite(&response_);
      return;
    case Action::kWriteAndFinish:
      // Final and the status in one batch: no OnWriteDone, one round of work less per request.
      RecordOutcome(status, &info);
      deps_.writer->WriteStarted(this);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), status);
      return;
    case Action::kFinish:
      RecordOutcome(status, &info);
      Finish(status);
      return;
  }
}

}  // namespace llama::server
