#!/usr/bin/env bash
# Until the server lands: a one-shot generation from the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
exec "$BUILD_DIR/bin/llama-chat" generate --model_dir models/stories15M --prompt "Once upon a time" --max_tokens 128
