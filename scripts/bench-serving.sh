#!/usr/bin/env bash
# The serving benchmark of docs/benchmarks.md (issue 14): a llama-chat-server process on the default model, loaded
# over gRPC by `llama-chat load` from another process. Closed-loop sweeps at 1/4/16/64 streams (32 prompt + 128
# output tokens, EOS ignored) with k=1 (streamed) and k=4 (scored by the safety reward model), then a Poisson run
# at 70% of the k=1 sweep's highest request rate. JSON and SVG go to $BENCH_OUT (default $BUILD_DIR/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
B=$BUILD_DIR/bin
M=models/stories15M
RM=models/stories15M-safety-rm
OUT=${BENCH_OUT:-$BUILD_DIR/bench}
PORT=${BENCH_PORT:-50990}
mkdir -p "$OUT"
SERVER_PID=""

start_server() {
  "$B/llama-chat-server" --model "$M" --port "$PORT" --metrics_port -1 "$@" >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    grep -q SERVING "$OUT/server.log" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-serving: llama-chat-server did not start; see $OUT/server.log" >&2
  exit 1
}
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap stop_server EXIT

LOAD=("$B/llama-chat" load --server "127.0.0.1:$PORT" --input_tokens 32 --output_tokens 128 --warmup 4)
SWEEP=(--concurrency 1,4,16,64)

echo "-- k=1, streamed (no reward model)"
start_server
"${LOAD[@]}" "${SWEEP[@]}" --num_requests 16,32,64,256 --label "k=1 (streamed)" --json "$OUT/load_k1.json"
# 70% of the highest request rate the sweep reached, for 20 s of arrivals.
read -r RATE NUM < <(/usr/bin/python3 -c "
import json, sys
levels = json.load(open(sys.argv[1]))['levels']
rate = 0.7 * max(l['request_throughput'] for l in levels)
print('%.2f %d' % (rate, max(20, round(20 * rate))))" "$OUT/load_k1.json")
echo "-- Poisson arrivals at $RATE requests/s (70% of the sweep's maximum), $NUM requests"
# Another seed: the sweep's prompts are in this server's prefix cache.
"${LOAD[@]}" --request_rate "$RATE" --num_requests "$NUM" --seed 1 --slo ttft_ms=1000,tpot_ms=50 --label "k=1, Poisson" \
  --json "$OUT/load_poisson.json"
stop_server

echo "-- k=4, every candidate scored by the safety reward model before anything is sent"
start_server --safety_model_dir "$RM"
"${LOAD[@]}" "${SWEEP[@]}" --num_requests 8,16,32,64 --num_candidates 4 --label "k=4 (scored)" \
  --json "$OUT/load_k4.json"
stop_server

"$B/llama-chat" load --plot "$OUT/load_k1.json,$OUT/load_k4.json" --svg "$OUT/load_sweep.svg"
/usr/bin/python3 -c "
import json, sys
k1 = json.load(open(sys.argv[1]))['levels']
by_c = {l['concurrency']: l['output_throughput'] for l in k1}
print('k=1 through gRPC: 16 streams = %.2fx single-stream output tok/s (%.1f vs %.1f); goal >= 3x'
      % (by_c[16] / by_c[1], by_c[16], by_c[1]))" "$OUT/load_k1.json"
