#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, build tree build-asan, shared with `make test-asan`) and runs each for FUZZ_SECONDS, one after
# the other, printing libFuzzer's final stats (executions, coverage) per target. Exits non-zero when a target
# crashed or broke a property; the input that did it is kept in build-asan/artifacts/<target>/ (fuzz/README.md).
# FUZZ_SECONDS (default 60); FUZZ_TARGETS (default: all); FUZZ_MAX_LEN (bytes per input, default per target).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=(${FUZZ_TARGETS:-checkpoint_fuzzer gguf_fuzzer dialog_json_fuzzer tokenizer_fuzzer chat_request_fuzzer})
bash scripts/configure-asan.sh "$BUILD_DIR"  # the tree `make test-asan` uses too
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]}"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# Leaks are findings too, but only at exit of a run (LeakSanitizer runs after libFuzzer's loop).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
max_len() {
  case $1 in
    checkpoint_fuzzer | gguf_fuzzer) echo 16384 ;;
    *) echo 4096 ;;
  esac
}
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  work=$BUILD_DIR/corpus/$t    # grows as the fuzzer finds new coverage; the committed seeds stay as they are
  artifacts=$BUILD_DIR/artifacts/$t/
  log=$BUILD_DIR/logs/$t.log
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  args=(-max_total_time="$SECONDS_EACH" -print_final_stats=1 -artifact_prefix="$artifacts" -timeout=10
        -rss_limit_mb=2048 -max_len="${FUZZ_MAX_LEN:-$(max_len "$t")}")
  [[ -f fuzz/$t.dict ]] && args+=(-dict="fuzz/$t.dict")
  echo "== $t: ${SECONDS_EACH}s"
  rc=0
  "$BUILD_DIR/bin/$t" "${args[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{print $2}' | tail -1)
  speed=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  line="$t: rc=$rc executions=${execs:-?} exec/s=${speed:-?} ${cov:-cov: ? ft: ?} corpus=$(ls "$work" | wc -l)"
  summary+=("$line")
  echo "$line"
  if ((rc != 0)); then
    failed+=("$t")
    grep -E 'ERROR|PROPERTY|SUMMARY|Test unit written|deadly signal|runtime error' "$log" | head -20 || true
    echo "   log: $log; inputs kept: $(ls "$artifacts" | tr '\n' ' ')"
  fi
done
echo "== fuzz summary (${SECONDS_EACH}s each)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
