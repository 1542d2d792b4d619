#!/usr/bin/python3
"""Writes llama-chat-dashboard.json, the Grafana dashboard of llama-chat-server, from the panel list below.

The JSON is committed; the deploy tests regenerate it and fail when it differs, and evaluate every expression in
it against a real Prometheus scraping a real server (tests/deploy/integration_test.py). Every llama_chat_ selector
filters on the dashboard's $namespace and $pod variables (the PodMonitor target labels).
Usage: /usr/bin/python3 deploy/grafana/gen_dashboard.py [--check]   (--check: exit 1 if the JSON is stale)
"""
import json
import os
import sys

SEL = '{namespace="$namespace", pod=~"$pod"}'
RATE = "[$__rate_interval]"
DS = {"type": "prometheus", "uid": "${datasource}"}


def quantiles(metric, qs=(0.5, 0.9, 0.99), by=""):
    group = f"{by}, le" if by else "le"
    legend_by = "{{" + by + "}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{SEL}{RATE})))",
             f"{legend_by}p{int(q * 100)}") for q in qs]


def timeseries(title, targets, unit, desc, stack=False, max_=None):
    panel = {
        "type": "timeseries", "title": title, "description": desc, "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"fillOpacity": 10, "lineWidth": 1,
                                                             "stacking": {"mode": "normal" if stack else "none"}}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"refId": chr(ord("A") + i), "expr": e, "legendFormat": l, "datasource": DS}
                    for i, (e, l) in enumerate(targets)],
    }
    if max_ is not None:
        panel["fieldConfig"]["defaults"]["max"] = max_
        panel["fieldConfig"]["defaults"]["min"] = 0
    return panel


def heatmap(title, metric, desc):
    return {
        "type": "heatmap", "title": title, "description": desc, "datasource": DS,
        "options": {"calculate": False, "yAxis": {"unit": "short"}, "cellGap": 1,
                    "color": {"mode": "scheme", "scheme": "Oranges"}},
        "targets": [{"refId": "A", "datasource": DS, "format": "heatmap", "legendFormat": "{{le}}",
                     "expr": f"sum by (le) (increase({metric}_bucket{SEL}{RATE}))"}],
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


PANELS = [
    row("Latency"),
    timeseries("Time to first token", quantiles("llama_chat_time_to_first_token_seconds"), "s",
               "From request arrival to the first streamed token: queueing, prefill and (with k > 1) candidate "
               "generation and scoring."),
    timeseries("Inter-token latency", quantiles("llama_chat_inter_token_latency_seconds"), "s",
               "Time between consecutive streamed tokens of one request."),
    timeseries("End-to-end request latency", quantiles("llama_chat_e2e_request_latency_seconds"), "s",
               "From request arrival to the final message."),
    timeseries("Queue time", quantiles("llama_chat_request_queue_time_seconds", (0.5, 0.99)), "s",
               "Time a request waits before the scheduler admits it into the running batch."),
    row("Throughput and outcomes"),
    timeseries("Tokens per second",
               [(f"sum(rate(llama_chat_generation_tokens_total{SEL}{RATE}))", "generated"),
                (f"sum(rate(llama_chat_prompt_tokens_total{SEL}{RATE}))", "prompt")],
               "short", "Generated (completion) and prompt (prefill) tokens per second over the selected pods."),
    timeseries("Requests by outcome",
               [(f"sum by (finished_reason) (rate(llama_chat_request_success_total{SEL}{RATE}))",
                 "{{finished_reason}}"),
                (f"sum by (code) (rate(llama_chat_request_failure_total{SEL}{RATE}))", "failed {{code}}")],
               "reqps", "Finished requests per second by finish reason, and failed ones by gRPC status code.",
               stack=True),
    row("Load and KV cache"),
    timeseries("Running and waiting requests",
               [(f"sum by (pod) (llama_chat_num_requests_running{SEL})", "running {{pod}}"),
                (f"sum by (pod) (llama_chat_num_requests_waiting{SEL})", "waiting {{pod}}")],
               "short", "Requests in the running batch and in the queue, per pod. The autoscaler targets an "
               "average of 2 waiting requests per pod."),
    timeseries("KV cache usage", [(f"max by (pod) (llama_chat_kv_cache_usage_ratio{SEL})", "{{pod}}")],
               "percentunit", "Share of the paged KV cache blocks in use, per pod.", max_=1),
    timeseries("Preemptions", [(f"sum by (pod) (rate(llama_chat_num_preemptions_total{SEL}{RATE}))", "{{pod}}")],
               "short", "Sequences preempted (by recompute) per second because the KV cache ran out of blocks."),
    timeseries("Prefix cache hit rate",
               [(f"sum by (model) (rate(llama_chat_prefix_cache_hits_total{SEL}{RATE})) / "
                 f"sum by (model) (rate(llama_chat_prefix_cache_queries_total{SEL}{RATE}))", "{{model}}")],
               "percentunit", "Share of the tokens of admitted sequences found in the prefix cache (not computed), "
               "per KV pool: the policy and each reward model. Multi-turn chat and shared system prompts raise it.",
               max_=1),
    timeseries("Prefix cache blocks",
               [(f"sum by (pod, model) (llama_chat_prefix_cache_blocks{SEL})", "{{model}} {{pod}}")],
               "short", "KV blocks held only by the prefix cache (kept after their request, evicted when blocks "
               "are needed), per pod and KV pool."),
    timeseries("Model memory",
               [(f"sum by (pod, model, dtype) (llama_chat_weight_bytes{SEL})", "{{model}} weights ({{dtype}}) {{pod}}"),
                (f"sum by (pod) (llama_chat_kv_cache_bytes{SEL})", "policy KV pool {{pod}}")],
               "bytes", "Bytes of each loaded model's stored weights (by storage type: --weights_dtype, "
               "--reward_weights_dtype) and of the policy's KV pool (--kv_dtype), per pod: what the pod's memory "
               "limit must hold besides the process."),
    row("Safety and candidates"),
    heatmap("Reward score distribution", "llama_chat_reward_score",
            "Scores (probabilities) the reward models gave to candidates, all models."),
    timeseries("Reward score by model", quantiles("llama_chat_reward_score", (0.1, 0.5, 0.9), by="model"),
               "short", "Quantiles of the candidates' scores per reward model (safety, helpfulness)."),
    timeseries("Candidates per request",
               [(f"sum(rate(llama_chat_candidates_per_request_sum{SEL}{RATE})) / "
                 f"sum(rate(llama_chat_candidates_per_request_count{SEL}{RATE}))", "mean"),
                (f"histogram_quantile(0.9, sum by (le) (rate(llama_chat_candidates_per_request_bucket{SEL}{RATE})))",
                 "p90")],
               "short", "Candidates (k) generated and scored per request."),
    timeseries("Safety refusals",
               [(f"sum(rate(llama_chat_safety_refusals_total{SEL}{RATE}))", "refusals/s"),
                (f"sum(rate(llama_chat_safety_refusals_total{SEL}{RATE})) / "
                 f"sum(rate(llama_chat_request_success_total{SEL}{RATE}))", "share of finished requests")],
               "short", "Requests answered with the refusal because no candidate passed the safety threshold."),
    timeseries("Reward scoring latency", quantiles("llama_chat_reward_latency_seconds", (0.5, 0.99)), "s",
               "Time to score a request's candidates with the reward model(s)."),
    row("Scored streaming"),
    timeseries("Segments per request", quantiles("llama_chat_segments_per_request", (0.5, 0.99)), "short",
               "Scored streaming: segments chosen per request (segment_tokens > 0)."),
    heatmap("Segment safety score", "llama_chat_segment_score",
            "Scored streaming: the chosen candidate's safety score of every segment."),
    timeseries("Rejected segments",
               [(f"sum(rate(llama_chat_rejected_segments_total{SEL}{RATE}))", "rejected segments/s")],
               "short", "Scored streaming: segments in which no candidate passed (each ended its answer with the "
               "refusal, after the segments already streamed)."),
]


def layout(panels):
    """Places panels on Grafana's 24-column grid: rows full width, other panels two per line."""
    y, x = 0, 0
    for i, p in enumerate(panels):
        p["id"] = i + 1
        if p["type"] == "row":
            y += 8 if x else 0
            x = 0
            p["gridPos"] = {"h": 1, "w": 24, "x": 0, "y": y}
            y += 1
            continue
        p["gridPos"] = {"h": 8, "w": 12, "x": x, "y": y}
        x = 12 - x
        if x == 0:
            y += 8
    return panels


def variable(name, label, query, multi):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS, "refresh": 2, "sort": 1,
        "query": {"query": query, "refId": name}, "definition": query,
        "multi": multi, "includeAll": multi, "allValue": ".*" if multi else None,
        "current": {}, "options": [], "hide": 0,
    }


def dashboard():
    return {
        "uid": "llama-chat", "title": "llama-chat serving", "tags": ["llama-chat", "llm"],
        "description": "llama-chat-server: latency, throughput, batching, KV cache and safety reward model.",
        "editable": True, "graphTooltip": 1, "refresh": "30s", "schemaVersion": 39, "version": 1,
        "time": {"from": "now-1h", "to": "now"}, "timezone": "",
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "refresh": 1},
            variable("namespace", "Namespace", "label_values(llama_chat_num_requests_running, namespace)", False),
            variable("pod", "Pod", 'label_values(llama_chat_num_requests_running{namespace="$namespace"}, pod)',
                     True),
        ]},
        "annotations": {"list": []},
        "panels": layout(PANELS),
    }


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama-chat-dashboard.json")
    text = json.dumps(dashboard(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        with open(out) as f:
            same = f.read() == text
        print(f"{out} is {'up to date' if same else 'stale: run deploy/grafana/gen_dashboard.py'}")
        sys.exit(0 if same else 1)
    with open(out, "w") as f:
        f.write(text)
    print("wrote", out)


if __name__ == "__main__":
    main()
