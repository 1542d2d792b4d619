#!/usr/bin/python3
"""Drives llama-chat-server with a client that is not ours (python3-grpcio, stubs generated at test time from the
repository's chat.proto and the standard grpc.health.v1 health.proto), over a real loopback port, with the server
binary as a subprocess:

  health goes SERVING after warm-up; reflection lists the services and resolves each one's methods; Chat streams deltas then one Final; Tokenize and GetModelInfo answer;
  a bad request is INVALID_ARGUMENT; a /metrics scrape passes `promtool check metrics` and reconciles (requests by
  outcome sum to the requests sent, running and waiting back to 0); SIGTERM with streams in flight: health goes
  NOT_SERVING, new calls get UNAVAILABLE, the streams in flight complete with a Final, and the process exits 0.

usage: grpc_python_client_test.py --server_bin BIN --source_dir DIR [--model_dir DIR]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HEALTH_PROTO_CANDIDATES = [
    "/usr/share/grpc-proto/grpc/health/v1/health.proto",
    "/usr/include/grpc/health/v1/health.proto",
    "/usr/share/grpc/health/v1/health.proto",
]


def generate_stubs(source_dir, out_dir):
    """protoc + grpc_python_plugin (Debian's protobuf-compiler-grpc) → importable modules in out_dir."""
    health = next((p for p in HEALTH_PROTO_CANDIDATES if os.path.exists(p)), None)
    if health is None:
        sys.exit("FAIL: grpc.health.v1 health.proto not found (apt grpc-proto)")
    reflection = health.replace("health/v1/health.proto", "reflection/v1alpha/reflection.proto")
    if not os.path.exists(reflection):
        sys.exit("FAIL: %s not found (apt grpc-proto)" % reflection)
    # The Python module paths must not start with grpc. (that would shadow the installed grpc package); the proto
    # packages, which are what the wire uses, stay grpc.health.v1 and grpc.reflection.v1alpha.
    for module, source in [("health_v1", health), ("reflection_v1alpha", reflection)]:
        os.makedirs(os.path.join(out_dir, module))
        shutil.copy(source, os.path.join(out_dir, module, os.path.basename(source)))
    plugin = shutil.which("grpc_python_plugin")
    if plugin is None:
        sys.exit("FAIL: grpc_python_plugin not found (apt protobuf-compiler-grpc)")
    for include, proto in [(os.path.join(source_dir, "proto"), "llamachat/v1/chat.proto"),
                           (out_dir, "health_v1/health.proto"), (out_dir, "reflection_v1alpha/reflection.proto")]:
        subprocess.run(["protoc", "-I", include, "--python_out", out_dir, "--grpc_out", out_dir,
                        "--plugin=protoc-gen-grpc=" + plugin, proto], check=True)
    sys.path.insert(0, out_dir)


class ServerProcess:
    """llama-chat-server as a subprocess; parses the ports it prints."""

    def __init__(self, server_bin, model_dir):
        self.proc = subprocess.Popen(
            [server_bin, "--model_dir", model_dir, "--port", "0", "--metrics_port", "0", "--threads", "2",
             "--max_num_seqs", "8", "--drain_timeout", "120", "--reflection"],
            stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.ports = None
        self.ready = threading.Event()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self.ready.wait(120):
            self.proc.kill()
            sys.exit("FAIL: server did not report its ports:\n" + "".join(self.lines))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"gRPC on .*:(\d+), metrics on :(\d+)/metrics", line)
            if m:
                self.ports = (int(m.group(1)), int(m.group(2)))
                self.ready.set()


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def metric_values(text, name):
    """Sum of the samples of `name` (exact metric name, any labels) in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name:
            total += float(m.group(3))
    return total


def check_reflection(channel, reflection_pb2, reflection_pb2_grpc):
    """What a generic client (grpcurl, buf curl) does first: list the services, then resolve each one's file
    descriptor (with its dependencies) into a descriptor pool and read its methods. Returns {service: [methods]}."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    def ask(**kwargs):
        answers = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**kwargs)]),
                                                 timeout=10))
        check(len(answers) == 1, "reflection answered %d messages to %r" % (len(answers), kwargs))
        return answers[0]

    services = [s.name for s in ask(list_services="").list_services_response.service]
    files = {}
    for name in services:
        answer = ask(file_containing_symbol=name)
        check(answer.WhichOneof("message_response") == "file_descriptor_response",
              "reflection cannot resolve %s: %s" % (name, answer.error_response))
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(file_name):
        check(file_name in files, "reflection did not send %s" % file_name)
        if file_name in added:
            return
        for dep in files[file_name].dependency:
            add(dep)
        pool.Add(files[file_name])
        added.add(file_name)

    for file_name in list(files):
        add(file_name)
    methods = {}
    for name in services:
        service = pool.FindServiceByName(name)
        methods[name] = [m.name for m in service.methods]
        check(methods[name], "%s has no methods" % name)
        for m in service.methods:
            check(m.input_type.full_name and m.output_type.full_name, "%s.%s types unresolved" % (name, m.name))
    return methods


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server_bin", required=True)
    parser.add_argument("--source_dir", required=True)
    parser.add_argument("--model_dir")
    args = parser.parse_args()
    model_dir = args.model_dir or os.path.join(args.source_dir, "models", "stories15M")
    if not os.path.exists(os.path.join(model_dir, "model.safetensors")):
        print("SKIP: %s missing (run scripts/fetch-model.sh)" % model_dir)
        return 77

    stub_dir = tempfile.mkdtemp(prefix="llamachat_py_")
    generate_stubs(args.source_dir, stub_dir)
    import grpc
    from llamachat.v1 import chat_pb2, chat_pb2_grpc
    from health_v1 import health_pb2, health_pb2_grpc
    from reflection_v1alpha import reflection_pb2, reflection_pb2_grpc

    server = ServerProcess(args.server_bin, model_dir)
    port, metrics_port = server.ports
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    chat = chat_pb2_grpc.ChatServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    SERVING = health_pb2.HealthCheckResponse.SERVING
    NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

    def health_status(service):
        return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def wait_health(want, timeout_s=120):
        end = time.time() + timeout_s
        while time.time() < end:
            if all(health_status(s) == want for s in ("", "llamachat.v1.ChatService")):
                return True
            time.sleep(0.05)
        return False

    sent = 0
    try:
        check(wait_health(SERVING), "health never became SERVING")

        # Server reflection (--reflection): every service it lists resolves, methods and all (issue 17).
        methods = check_reflection(channel, reflection_pb2, reflection_pb2_grpc)
        check({"llamachat.v1.ChatService", "grpc.health.v1.Health"} <= set(methods), "reflection lists %r" % methods)
        check(set(methods["grpc.health.v1.Health"]) == {"Check", "Watch"}, "health methods %r" % methods)
        check({"Chat", "Tokenize", "GetModelInfo", "Score"} <= set(methods["llamachat.v1.ChatService"]),
              "ChatService methods %r" % methods)
        print("reflection: %s" % ", ".join("%s (%d methods)" % (k, len(v)) for k, v in sorted(methods.items())))

        def request(text, max_tokens, temperature=0.0, seed=None):
            r = chat_pb2.ChatRequest(messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)])
            r.sampling.max_tokens = max_tokens
            r.sampling.temperature = temperature
            if seed is not None:
                r.sampling.seed = seed
            return r

        # A streaming Chat.
        sent += 1
        responses = list(chat.Chat(request("Tell me a story about a dog.", 32), timeout=120))
        deltas = [r.delta.text for r in responses if r.WhichOneof("kind") == "delta"]
        finals = [r.final for r in responses if r.WhichOneof("kind") == "final"]
        check(len(deltas) > 1 and len(finals) == 1, "expected deltas then one Final, got %r" % responses)
        check(responses[-1].WhichOneof("kind") == "final", "Final is not last")
        check(finals[0].usage.completion_tokens > 0, "no tokens generated")
        check(finals[0].finish_reason in (chat_pb2.FINISH_REASON_STOP, chat_pb2.FINISH_REASON_LENGTH),
              "finish reason %d" % finals[0].finish_reason)
        print("chat reply: %r" % "".join(deltas))

        # Tokenize, GetModelInfo, Score.
        ids = chat.Tokenize(chat_pb2.TokenizeRequest(messages=request("Hi", 1).messages), timeout=10).token_ids
        check(list(ids[:1]) == [1] and len(ids) > 5, "Tokenize ids %r" % list(ids))
        info = chat.GetModelInfo(chat_pb2.GetModelInfoRequest(), timeout=10)
        check(info.model.num_layers == 6 and info.model.vocab_size == 32000, "model info %r" % info)
        try:
            chat.Score(chat_pb2.ScoreRequest(), timeout=10)
            check(False, "Score answered without a reward model")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNIMPLEMENTED, "Score: %s" % e.code())

        # A bad request.
        sent += 1
        bad = request("Hi", 8)
        bad.sampling.top_p = 2.0
        try:
            list(chat.Chat(bad, timeout=10))
            check(False, "top_p = 2 was accepted")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "sampling.top_p" in e.details(),
                  "bad request: %s %s" % (e.code(), e.details()))

        # The scrape: promtool accepts it and it reconciles with what was sent.
        scrape = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=10).read().decode()
        promtool = shutil.which("promtool")
        check(promtool is not None, "promtool not found (apt prometheus)")
        lint = subprocess.run([promtool, "check", "metrics"], input=scrape, text=True, capture_output=True)
        check(lint.returncode == 0, "promtool check metrics failed:\n%s%s" % (lint.stdout, lint.stderr))
        outcomes = (metric_values(scrape, "llama_chat_request_success_total") +
                    metric_values(scrape, "llama_chat_request_failure_total"))
        check(outcomes == sent, "%d outcomes in the metrics for %d requests sent" % (outcomes, sent))
        for gauge in ("llama_chat_num_requests_running", "llama_chat_num_requests_waiting"):
            check(metric_values(scrape, gauge) == 0, "%s is not back to 0" % gauge)
        print("metrics: promtool OK, %d outcomes for %d requests" % (outcomes, sent))

        # SIGTERM with streams in flight.
        num_streams = 3
        first_delta = [threading.Event() for _ in range(num_streams)]
        results = [None] * num_streams

        def stream(i):
            got = []
            try:
                for r in chat.Chat(request("Tell me a long story about a brave knight.", 200, 1.0, seed=i),
                                   timeout=300):
                    got.append(r)
                    first_delta[i].set()
                results[i] = ("ok", got)
            except grpc.RpcError as e:
                results[i] = (e.code(), got)
            first_delta[i].set()

        threads = [threading.Thread(target=stream, args=(i,)) for i in range(num_streams)]
        for t in threads:
            t.start()
        for e in first_delta:
            check(e.wait(120), "a stream never started")
        in_flight = sum(1 for r in results if r is None)
        check(in_flight > 0, "every stream finished before SIGTERM; nothing to drain")
        server.proc.send_signal(signal.SIGTERM)
        check(wait_health(NOT_SERVING, 10), "health did not go NOT_SERVING on SIGTERM")
        try:
            list(chat.Chat(request("Hi", 4), timeout=10))
            check(False, "a new call was accepted while draining")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAVAILABLE, "new call while draining: %s" % e.code())
        for t in threads:
            t.join(300)
        for i, (status, got) in enumerate(results):
            check(status == "ok", "stream %d ended with %s" % (i, status))
            check(got and got[-1].WhichOneof("kind") == "final", "stream %d has no Final" % i)
        rc = server.proc.wait(120)
        check(rc == 0, "server exit code %d" % rc)
        print("drain: %d stream(s) in flight at SIGTERM completed; exit 0" % in_flight)
    except AssertionError as e:
        print("FAIL: %s" % e)
        print("server log:\n" + "".join(server.lines))
        server.proc.kill()
        return 1
    finally:
        shutil.rmtree(stub_dir, ignore_errors=True)
        if server.proc.poll() is None:
            server.proc.kill()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
