#!/usr/bin/env bash
# Configures (once) the one clang tree that `make fuzz` and `make test-asan` share (docs/reliability.md): the whole
# project with ASan+UBSan and libFuzzer's coverage instrumentation (-fsanitize=fuzzer-no-link, harmless in the test
# binaries, which link the sanitizers' runtime only), tests on, the fuzz targets on. One tree instead of two halves
# the sanitizer build time in CI. -O1 keeps the sanitized tests fast enough and stack traces exact; asserts stay on.
# Usage: configure-asan.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: configure-asan.sh BUILD_DIR}
command -v clang++ >/dev/null || { echo "configure-asan: clang++ missing (make deps)" >&2; exit 1; }
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS_RELEASE="-O1 -gline-tables-only" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only" \
    -DLLAMA_SANITIZE=ON -DLLAMA_FUZZ=ON -DLLAMA_CUDA=OFF -DLLAMA_BUILD_BENCHMARKS=OFF \
    -DLLAMA_SENTENCEPIECE_MODULE=OFF
fi
