#!/usr/bin/env bash
# Runs every test (unit, golden, end-to-end) through CTest. GPU tests report SKIPPED without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}
