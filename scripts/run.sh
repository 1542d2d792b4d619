#!/usr/bin/env bash
# Serves the default model over gRPC (port ${PORT:-50051}, Prometheus /metrics on ${METRICS_PORT:-9400}) with the
# default safety reward model co-hosted: every answer is scored before it is streamed, and a request may ask for
# k candidates (up to --max_candidates). Extra arguments go to llama-chat-server. Ctrl-C / SIGTERM drains.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
RM=models/stories15M-safety-rm
[[ -f $RM/model.safetensors ]] || { echo "run: $RM missing (run make model)" >&2; exit 1; }
exec "$BUILD_DIR/bin/llama-chat-server" --model_dir models/stories15M --safety_model_dir "$RM" \
  --port "${PORT:-50051}" --metrics_port "${METRICS_PORT:-9400}" "$@"
