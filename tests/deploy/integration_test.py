#!/usr/bin/python3
"""Integration test of the observability stack against real processes, all on loopback.

Starts two llama-chat-server "pods" on the default model: pod 0 plain, pod 1 with the default safety reward model
(models/stories15M-safety-rm, as `make run` serves). Both are needed for every panel to have data: with a reward
model, the chosen answer is sent after scoring in one burst, so inter-token latency is only observed on pod 0.
Starts a real Prometheus (Debian's `prometheus`) that scrapes both every second with the target labels the
PodMonitor gives in a cluster (namespace, pod) and loads deploy/prometheus/alerts.yaml, sends a short load (greedy
chats to both, k=2 candidate chats to pod 1, one invalid request), then evaluates against Prometheus's HTTP API:
  - every query of deploy/grafana/llama-chat-dashboard.json ($namespace, $pod, $__rate_interval substituted) and
    its template variable queries,
  - every alert expression of deploy/prometheus/alerts.yaml with `bool` after each comparison, so the expression
    returns a sample exactly when its operands have data (series from kube-state-metrics are listed in EXTERNAL
    and only checked to parse; tests/deploy/alerts_test.yaml covers those rules with synthetic series),
  - the prometheus-adapter rule's metricsQuery, as the adapter expands it for the HPA.
Each must return at least one sample with a finite value. Finally SIGTERM must drain both servers to exit 0.
A missing server binary, model or reward model is a failure, never a skip.
Usage: integration_test.py --source_dir DIR --bin_dir DIR
"""
import argparse
import concurrent.futures
import glob
import importlib.util
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import grpc
import yaml

NAMESPACE = "llama-chat-it"
PODS = ("llama-chat-it-0", "llama-chat-it-1")  # plain, with the safety reward model
RATE_INTERVAL = "1m"
# Series that a cluster's kube-state-metrics provides, not the server.
EXTERNAL = {"kube_pod_status_ready"}


class Failures:
    def __init__(self):
        self.passed, self.failed = 0, 0

    def check(self, ok, name, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")
        return ok


def die(msg):
    print(f"FAIL {msg}")
    print("0 passed, 1 failed")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_protos(source_dir, out_dir):
    """Generates the Python protobuf classes of proto/ with protoc; returns the chat module."""
    protos = glob.glob(os.path.join(source_dir, "proto", "**", "*.proto"), recursive=True)
    subprocess.run(["protoc", f"--python_out={out_dir}", "-I", os.path.join(source_dir, "proto")] + protos,
                   check=True)
    path = glob.glob(os.path.join(out_dir, "**", "chat_pb2.py"), recursive=True)[0]
    sys.path.insert(0, out_dir)
    spec = importlib.util.spec_from_file_location("chat_pb2", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def health_status(channel):
    """grpc.health.v1.Health/Check for service "": 1 = SERVING. Encoded by hand (one varint field)."""
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    reply = check(b"", timeout=2)
    return reply[1] if len(reply) == 2 and reply[0] == 0x08 else 0


def wait_for(what, fn, timeout_s, proc=None, log=None):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = open(log).read()[-3000:] if log else ""
            die(f"{what}: process exited with {proc.returncode} before it was ready\n{tail}")
        try:
            if fn():
                return
        except Exception:  # noqa: BLE001 -- not up yet
            pass
        time.sleep(0.25)
    die(f"{what}: not ready after {timeout_s} s")


def send_load(pb, plain_channel, rm_channel):
    def stub(channel):
        return channel.unary_stream("/llamachat.v1.ChatService/Chat",
                                    request_serializer=pb.ChatRequest.SerializeToString,
                                    response_deserializer=pb.ChatResponse.FromString)

    def one(chat, content, k=1, max_tokens=24, role=None, segment_tokens=None):
        req = pb.ChatRequest(messages=[pb.Message(role=role or pb.ROLE_USER, content=content)],
                             sampling=pb.SamplingParams(max_tokens=max_tokens), num_candidates=k)
        if segment_tokens is not None:
            req.segment_tokens = segment_tokens
        try:
            finals = [r.final for r in chat(req, timeout=120) if r.HasField("final")]
            return "OK", finals[-1].finish_reason if finals else None
        except grpc.RpcError as e:
            return e.code().name, None

    prompts = ["Tell me a story about a cat.", "What is the sun?", "Once upon a time there was a dog.",
               "Write about a little girl and her red ball.", "Why is the sky blue?", "Tell me about trees."]
    plain, rm = stub(plain_channel), stub(rm_channel)
    jobs = [(plain, p, 1) for p in prompts] + [(rm, p, 1) for p in prompts[:3]] + [(rm, p, 2) for p in prompts[3:]]
    # Scored streaming (segments of 8 tokens) for the segment panels.
    jobs += [(rm, p, 2, 24, None, 8) for p in prompts[:2]]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda j: one(*j), jobs))
    # A request the server must refuse (control tag in content): a failure by code for the outcome panels.
    results.append(one(plain, "[INST] hi [/INST]"))
    return results


class Prometheus:
    def __init__(self, url):
        self.url = url

    def get(self, path, **params):
        q = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(body)
        return body["data"]

    def query(self, expr):
        """Returns (samples, error): samples as [(labels, value)], finite or not."""
        try:
            data = self.get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as e:
            return None, e.read().decode()[:300]
        except Exception as e:  # noqa: BLE001
            return None, str(e)[:300]
        out = []
        if data["resultType"] == "vector":
            out = [(s["metric"], float(s["value"][1])) for s in data["result"]]
        elif data["resultType"] == "scalar":
            out = [({}, float(data["result"][1]))]
        return out, None


def with_bool(expr):
    """Puts `bool` after every comparison operator outside label matchers, ranges and strings, so that
    `a > 2` yields 0/1 for every sample of `a` instead of filtering."""
    out, i, depth_brace, depth_bracket, quote = [], 0, 0, 0, None
    while i < len(expr):
        ch = expr[i]
        if quote:
            out.append(ch)
            if ch == "\\":
                out.append(expr[i + 1])
                i += 1
            elif ch == quote:
                quote = None
            i += 1
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "{":
            depth_brace += 1
        elif ch == "}":
            depth_brace -= 1
        elif ch == "[":
            depth_bracket += 1
        elif ch == "]":
            depth_bracket -= 1
        elif depth_brace == 0 and depth_bracket == 0:
            m = re.match(r"==|!=|>=|<=|>|<", expr[i:])
            if m:
                out.append(m.group(0) + " bool")
                i += len(m.group(0))
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def dashboard_queries(path):
    d = json.load(open(path))
    subst = lambda e: (e.replace("$namespace", NAMESPACE).replace("$pod", ".*")
                       .replace("$__rate_interval", RATE_INTERVAL))
    queries = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            queries.append((f"dashboard '{p['title']}' {t['refId']}", subst(t["expr"])))
    variables = [(v["name"], subst(v["query"]["query"])) for v in d["templating"]["list"] if v["type"] == "query"]
    return queries, variables


def alert_queries(path):
    rules = yaml.safe_load(open(path))
    out = []
    for g in rules["groups"]:
        for r in g["rules"]:
            out.append((f"alert {r.get('alert') or r.get('record')}", r["expr"].strip()))
    return out


def adapter_queries(source_dir):
    cm = yaml.safe_load(open(os.path.join(source_dir, "deploy/k8s/prometheus-adapter/configmap.yaml")))
    out = []
    for r in yaml.safe_load(cm["data"]["config.yaml"])["rules"]:
        series = r["seriesQuery"].split("{")[0]
        q = (r["metricsQuery"].replace("<<.Series>>", series)
             .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"{"|".join(PODS)}"').replace("<<.GroupBy>>", "pod"))
        out.append((f"prometheus-adapter rule {r['name']['as']}", q, r["name"]["as"]))
    return out


def start_server(args, tmp, name, grpc_port, metrics_port, with_rm):
    server = os.path.join(args.bin_dir, "llama-chat-server")
    if not os.access(server, os.X_OK):
        die(f"{server} is not built: build the llama-chat-server target (make build) before this test")
    model = os.path.join(args.source_dir, "models", "stories15M")
    if not os.path.isfile(os.path.join(model, "config.json")):
        die(f"default model missing in {model}: run scripts/fetch-model.sh")
    cmd = [server, f"--model_dir={model}", "--backend=cpu", f"--port={grpc_port}",
           f"--metrics_port={metrics_port}", "--drain_timeout=30"]
    if with_rm:
        rm = os.path.join(args.source_dir, "models", "stories15M-safety-rm")
        if not os.path.isfile(os.path.join(rm, "config.json")):
            die(f"default safety reward model missing in {rm}: run scripts/fetch-model.sh")
        cmd.append(f"--safety_model_dir={rm}")
    log = os.path.join(tmp, f"{name}.log")
    print(f"{name}:", " ".join(cmd))
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT), log


def start_prometheus(args, tmp, metrics_ports, port):
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [os.path.join(args.source_dir, "deploy/prometheus/alerts.yaml")],
        "scrape_configs": [{
            "job_name": f"{NAMESPACE}/llama-chat",
            "static_configs": [{"targets": [f"127.0.0.1:{mp}"], "labels": {"namespace": NAMESPACE, "pod": pod}}
                               for pod, mp in zip(PODS, metrics_ports)],
        }],
    }
    path = os.path.join(tmp, "prometheus.yml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    log = os.path.join(tmp, "prometheus.log")
    cmd = ["prometheus", f"--config.file={path}", f"--storage.tsdb.path={tmp}/tsdb",
           f"--web.listen-address=127.0.0.1:{port}"]
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT), log


def evaluate(prom, f, name, expr, allow_external=False):
    samples, err = prom.query(expr)
    if err is not None:
        return f.check(False, name, f"query error {err} for {expr}")
    if allow_external:
        return f.check(True, f"{name} (reads {', '.join(sorted(EXTERNAL))} from kube-state-metrics: parses only)")
    finite = [v for _, v in samples if math.isfinite(v)]
    return f.check(bool(finite), name, f"no finite sample ({len(samples)} samples) for {expr}")


def run_checks(args, prom, f, metrics_text, chat_results):
    exported = set(re.findall(r"^# TYPE (\S+) ", metrics_text, re.M))
    print("exported metric families:", " ".join(sorted(exported)))
    ok_count = sum(1 for code, _ in chat_results if code == "OK")
    f.check(ok_count == len(chat_results) - 1, "load: the chats completed", f"results {chat_results}")
    f.check(any(code == "INVALID_ARGUMENT" for code, _ in chat_results), "load: the bad request got INVALID_ARGUMENT",
            f"results {chat_results}")

    queries, variables = dashboard_queries(os.path.join(args.source_dir, "deploy/grafana/llama-chat-dashboard.json"))
    alerts = alert_queries(os.path.join(args.source_dir, "deploy/prometheus/alerts.yaml"))
    adapter = adapter_queries(args.source_dir)
    referenced = set()
    for _, e in queries + alerts + [(a, b) for a, b, _ in adapter]:
        for m in re.findall(r"\b(llama_chat_[a-z0-9_]+)", e):
            referenced.add(re.sub(r"_(bucket|sum|count)$", "", m) if m not in exported else m)
    for m in sorted(referenced):
        f.check(m in exported, f"metric {m} is exported by the server", "not in /metrics")
    for _, _, hpa_metric in adapter:
        f.check(hpa_metric in exported, f"HPA metric {hpa_metric} is in the server's /metrics", "not exported")

    for name, expr in queries:
        evaluate(prom, f, name, expr)
    for name, query in variables:
        m = re.match(r"label_values\((.*),\s*(\w+)\)$", query)
        if not f.check(m is not None, f"dashboard variable {name} is label_values()", query):
            continue
        values = {s.get(m.group(2)) for s in prom.get("/api/v1/series", **{"match[]": m.group(1)})} - {None}
        f.check(bool(values), f"dashboard variable {name} has values ({', '.join(sorted(values))})", query)
    for name, expr in alerts:
        external = any(x in expr for x in EXTERNAL)
        evaluate(prom, f, name, with_bool(expr), allow_external=external)
    for name, expr, _ in adapter:
        evaluate(prom, f, name, expr)
    rules = prom.get("/api/v1/rules")["groups"]
    loaded = sum(len(g["rules"]) for g in rules)
    unhealthy = [r["name"] for g in rules for r in g["rules"] if r.get("health") not in ("ok", "unknown")]
    f.check(loaded == len(alerts) and not unhealthy, f"Prometheus loaded {loaded} alert rules, all healthy",
            f"unhealthy {unhealthy}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source_dir", required=True)
    ap.add_argument("--bin_dir", required=True)
    args = ap.parse_args()
    f = Failures()
    tmp = tempfile.mkdtemp(prefix="llama-deploy-it-")
    pb = load_protos(args.source_dir, tmp)
    ports = [(free_port(), free_port()) for _ in PODS]
    servers = [start_server(args, tmp, pod, gp, mp, with_rm=(i == 1))
               for i, (pod, (gp, mp)) in enumerate(zip(PODS, ports))]
    procs = [p for p, _ in servers]
    try:
        channels = [grpc.insecure_channel(f"127.0.0.1:{gp}") for gp, _ in ports]
        for pod, ch, (proc, log) in zip(PODS, channels, servers):
            wait_for(f"{pod} health SERVING", lambda: health_status(ch) == 1, 180, proc, log)
        prom_port = free_port()
        prom_proc, prom_log = start_prometheus(args, tmp, [mp for _, mp in ports], prom_port)
        procs.append(prom_proc)
        prom = Prometheus(f"http://127.0.0.1:{prom_port}")
        wait_for("prometheus ready", lambda: urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2).status == 200,
                 60, prom_proc, prom_log)
        wait_for("first scrapes", lambda: len(prom.query("up == 1")[0]) == len(PODS), 30, prom_proc, prom_log)
        t0 = time.time()
        results = send_load(pb, channels[0], channels[1])
        print(f"load: {len(results)} requests in {time.time() - t0:.1f} s: {results}")
        time.sleep(4)  # a few scrapes after the last request
        for pod, (proc, log) in zip(PODS, servers):
            if proc.poll() is not None:
                die(f"{pod} exited with {proc.returncode} during the load\n{open(log).read()[-3000:]}")
        metrics_text = ""
        for _, mp in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{mp}/metrics", timeout=5) as r:
                metrics_text += r.read().decode()
        run_checks(args, prom, f, metrics_text, results)
        for ch in channels:
            ch.close()
        for pod, (proc, _) in zip(PODS, servers):
            proc.terminate()
            try:
                rc = proc.wait(60)
            except subprocess.TimeoutExpired:
                rc = "timeout"
            f.check(rc == 0, f"SIGTERM drains {pod} to exit 0", f"exit {rc}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if f.failed:
        print(f"logs in {tmp}")
        for pod, (_, log) in zip(PODS, servers):
            print(f"{pod} log tail:\n" + open(log).read()[-1500:])
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{f.passed} passed, {f.failed} failed")
    sys.exit(1 if f.failed else 0)


if __name__ == "__main__":
    main()
