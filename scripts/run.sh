#!/usr/bin/env bash
# Serves the default model over gRPC (port ${PORT:-50051}, Prometheus /metrics on ${METRICS_PORT:-9400}) with the
# default safety reward model co-hosted: every answer is scored before it is streamed, and a request may ask for
# k candidates (up to --max_candidates). Extra arguments go to llama-chat-server. Ctrl-C / SIGTERM drains.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RM=models/stories15M-safety-rm
[[ -f $RM/model.safetensors ]] || { echo "run: $RM missing (run make model)" >&2; exit 1; }
PORT=${PORT:-50051}
METRICS_PORT=${METRICS_PORT:-9400}
echo "run: llama-chat-server on models/stories15M: gRPC on 0.0.0.0:$PORT, metrics on http://localhost:$METRICS_PORT/metrics" >&2
echo "run: chat with it from another terminal:  $BUILD_DIR/bin/llama-chat chat --server localhost:$PORT" >&2
exec "$BUILD_DIR/bin/llama-chat-server" --model_dir models/stories15M --safety_model_dir "$RM" \
  --port "$PORT" --metrics_port "$METRICS_PORT" "$@"
