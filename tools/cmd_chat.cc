// llama-chat chat: a terminal client of llama-chat-server. Interactive by default: each line you type is a user
// turn, the reply streams as it is generated, and the dialog (with the optional system message) is kept across
// turns. --once "message" sends one turn, prints the reply to stdout and exits (for scripts).
// Commands in interactive mode: /reset (forget the dialog), /exit (or end of input). Ctrl-C while a reply streams
// cancels that reply (the server frees its sequence); Ctrl-C at the prompt quits.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "llamachat/v1/chat.grpc.pb.h"
#include "tools/cli_flags.h"
#include "tools/subcommands.h"

namespace llama::cli {
namespace {

namespace v1 = ::llamachat::v1;

struct ChatOptions {
  std::string server;
  std::string system;
  std::string once;    // with --once: send this one turn and exit
  int max_tokens = 0;  // 0 = the server's default
  float temperature = 0.8f;
  bool has_seed = false;
  uint64_t seed = 0;
};

// Set by the SIGINT handler in interactive mode (the only thing a handler may safely do); a watcher thread turns it
// into ClientContext::TryCancel while a reply streams.
volatile std::sig_atomic_t g_interrupted = 0;
void OnInterrupt(int) { g_interrupted = 1; }

void InstallInterruptHandler() {
  struct sigaction action = {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: Ctrl-C at the prompt ends the blocking read, and the loop quits
  sigaction(SIGINT, &action, nullptr);
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// Sends the dialog, writes the reply to stdout as it streams and returns its text.
absl::StatusOr<std::string> StreamReply(v1::ChatService::Stub& stub, const ChatOptions& options,
                                        const v1::ChatRequest& dialog) {
  v1::ChatRequest request = dialog;
  v1::SamplingParams* sampling = request.mutable_sampling();
  sampling->set_temperature(options.temperature);
  sampling->set_max_tokens(options.max_tokens);
  if (options.has_seed) sampling->set_seed(options.seed);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::ChatResponse>> reader = stub.Chat(&context, request);
  absl::Notification stream_done;
  std::thread watcher([&] {
    while (!stream_done.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
      if (g_interrupted) {
        context.TryCancel();
        return;
      }
    }
  });
  std::string reply;
  v1::ChatResponse response;
  while (reader->Read(&response)) {
    if (response.has_delta()) {
      reply += response.delta().text();
      std::fputs(response.delta().text().c_str(), stdout);
      std::fflush(stdout);
    } else if (response.has_final()) {
      const v1::Final& final_message = response.final();
      std::fprintf(stderr, "\n[%s · %d prompt + %d generated tokens · first token %.3f s · total %.3f s]\n",
                   v1::FinishReason_Name(final_message.finish_reason()).c_str(),
                   final_message.usage().prompt_tokens(), final_message.usage().completion_tokens(),
                   final_message.time_to_first_token_s(), final_message.total_time_s());
    }
  }
  grpc::Status status = reader->Finish();
  stream_done.Notify();
  watcher.join();
  if (!status.ok()) return FromGrpc(status);
  return reply;
}

v1::ChatRequest NewDialog(const ChatOptions& options) {
  v1::ChatRequest dialog;
  if (!options.system.empty()) {
    v1::Message* system = dialog.add_messages();
    system->set_role(v1::ROLE_SYSTEM);
    system->set_content(options.system);
  }
  return dialog;
}

void AddMessage(v1::ChatRequest* dialog, v1::Role role, const std::string& content) {
  v1::Message* message = dialog->add_messages();
  message->set_role(role);
  message->set_content(content);
}

int Interactive(v1::ChatService::Stub& stub, const ChatOptions& options) {
  std::fprintf(stderr, "llama-chat: connected to %s. Type a message; /reset forgets the dialog, /exit quits.\n",
               options.server.c_str());
  v1::ChatRequest dialog = NewDialog(options);
  InstallInterruptHandler();
  std::string line;
  while (true) {
    std::fputs("\nyou> ", stdout);
    std::fflush(stdout);
    g_interrupted = 0;
    if (!std::getline(std::cin, line) || g_interrupted || line == "/exit") break;
    if (line.empty()) continue;
    if (line == "/reset") {
      dialog = NewDialog(options);
      std::fputs("(dialog cleared)\n", stdout);
      continue;
    }
    AddMessage(&dialog, v1::ROLE_USER, line);
    std::fputs("assistant> ", stdout);
    absl::StatusOr<std::string> reply = StreamReply(stub, options, dialog);
    if (!reply.ok()) {
      // The turn did not happen: forget it so the dialog stays user/assistant alternating.
      dialog.mutable_messages()->RemoveLast();
      if (g_interrupted) {
        std::fputs("\n(reply cancelled)\n", stderr);
      } else {
        std::fprintf(stderr, "\nllama-chat chat: %s\n", reply.status().ToString().c_str());
      }
      continue;
    }
    AddMessage(&dialog, v1::ROLE_ASSISTANT, *reply);
  }
  std::fputs("\n", stdout);
  return 0;
}

int RunChat(int argc, char** argv) {
  ChatOptions options;
  FlagSet flags("chat", "--server HOST:PORT [--system TEXT] [--once \"message\"] [flags]",
                "Chats with a llama-chat-server in the terminal (interactive; --once for scripts).");
  flags.AddRequired("server", &options.server, "the server's gRPC address");
  flags.Add("system", &options.system, "a system message before the first turn");
  flags.Add("once", &options.once, "send this one message, print the reply and exit");
  flags.Add("max_tokens", &options.max_tokens, "generated tokens per reply at most (0: the server's default)");
  flags.Add("temperature", &options.temperature, "0 = greedy");
  flags.AddOptional("seed", &options.seed, "sampling seed (unset: the server picks one per request)");
  if (std::optional<int> exit_code = flags.ParseOrExit(argc, argv)) return *exit_code;
  options.has_seed = flags.Has("seed");
  auto channel = grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
  auto stub = v1::ChatService::NewStub(channel);
  if (!flags.Has("once")) return Interactive(*stub, options);
  v1::ChatRequest dialog = NewDialog(options);
  AddMessage(&dialog, v1::ROLE_USER, options.once);
  absl::StatusOr<std::string> reply = StreamReply(*stub, options, dialog);
  if (!reply.ok()) return Fail("chat", reply.status());
  std::fputs("\n", stdout);
  return 0;
}

}  // namespace

LLAMA_SUBCOMMAND(chat, "chat with a llama-chat-server in the terminal", RunChat);

}  // namespace llama::cli
