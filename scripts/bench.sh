#!/usr/bin/env bash
# The benchmarks recorded in docs/benchmarks.md, on the CPU backend and the default model. Each prints its own
# numbers (medians over repeats). Not part of `make test`. Run on a quiet machine; quote medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
B=$BUILD_DIR/bin
M=models/stories15M
echo "== machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%F' '%H:%M) UTC"
echo "== single-stream decode (issue 2)"
"$B/llama-chat" bench --model_dir "$M" --prompt_tokens 16 --gen_tokens 128 --repeats 5
echo "== the same on each CPU kernel path this machine runs (issue 11: LLAMA_CPU_ISA forces one)"
for isa in avx512 avx2; do
  if [[ $isa == avx512 ]] && ! grep -qw avx512f /proc/cpuinfo; then continue; fi
  LLAMA_CPU_ISA=$isa "$B/llama-chat" bench --model_dir "$M" --prompt_tokens 16 --gen_tokens 128 --repeats 5 --threads 2
done
echo "== aggregate throughput vs concurrency through the engine loop (issue 3)"
"$B/throughput_bench" --model_dir "$M" --concurrency 1,4,16,64 --prompt_tokens 32 --max_tokens 128 --repeats 3
echo "== host cost of one scheduling step (issue 3)"
"$B/scheduler_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
echo "== serving sweep through gRPC, llama-chat load as a separate process (issue 14)"
bash scripts/bench-serving.sh
echo "== gRPC path vs the direct engine loop, load generator out of process (issue 14)"
N=$(nproc)
if ((N >= 2)); then
  HALF=$((N / 2))
  SERVER_CPUS=$([[ $HALF -eq 1 ]] && echo 0 || echo "0-$((HALF - 1))")
  CLIENT_CPUS=$([[ $HALF -eq $((N - 1)) ]] && echo "$HALF" || echo "$HALF-$((N - 1))")
  echo "-- pinned: server (engine + gRPC) on CPUs $SERVER_CPUS with $HALF backend threads, load process on $CLIENT_CPUS"
  "$B/llama-chat" bench-serve --model_dir "$M" --concurrency 16 --num_requests 64 --rounds 3 --threads "$HALF" \
    --server_cpus "$SERVER_CPUS" --client_cpus "$CLIENT_CPUS"
fi
echo "-- unpinned: every core for the server's backend threads, the load process wherever the OS puts it"
"$B/llama-chat" bench-serve --model_dir "$M" --concurrency 16 --num_requests 64 --rounds 3
echo "== rejection sampling: k=4 vs k=1 with the safety reward model (issue 5)"
# Every run sends the same dialog: without this the repeats would be served from the prefix cache (issue 12).
"$B/rejection_sampling_bench" --model_dir "$M" --rm_dir models/stories15M-safety-rm --repeats 5 \
  --enable_prefix_caching=false
echo "== scored streaming: TTFT and e2e, k=1/4, S=16/32/64 vs whole-answer mode (issue 13; each run its own dialog,"
echo "   prefix caching on: incremental scoring relies on the reward model's cache)"
"$B/rejection_sampling_bench" --model_dir "$M" --rm_dir models/stories15M-safety-rm --repeats 5 --max_tokens 128 \
  --segment_tokens 16,32,64
echo "== prefix caching: multi-turn TTFT (random weights, stories15M shape, 2048 positions) and 32 requests on one"
echo "   200-token system prompt, on vs off (issue 12)"
"$B/prefix_cache_bench" --model_dir "$M" --turns 8 --turn_tokens 150 --requests 32 --system_tokens 200 --repeats 3
echo "== peak RSS while loading a 2.2 GB bf16 checkpoint and its Q8_0 GGUF, against the file, fp32 and packed sizes (issue 11)"
"$B/load_bench" --dir "${TMPDIR:-/tmp}/llama-load-bench"
echo "== tokenizer encode throughput: ours vs libsentencepiece (issue 15; the reference only where the module is built)"
"$B/tokenizer_bench" --tokenizer models/.cache/tokenizer.model --repeats 9
