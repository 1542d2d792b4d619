#!/usr/bin/env bash
# Prepares the CUDA proof run for a GPU machine (H100/H200, CUDA 13.0 runtime + cuBLAS installed, no network).
#
# Here (no GPU needed): builds the CUDA tests and llama-chat-cuda-bench for sm_90 into $BUILD_DIR, then bundles
# them into the git-ignored folder gpu-bundle/ with the non-CUDA shared libraries they load (from ldd; the CUDA
# runtime, cuBLAS and the driver are the GPU machine's own; glibc too) and the stories15M checkpoint the parity
# tests read. Prints the one command to run on the GPU machine from the repository root; it runs the CUDA tests,
# then the benchmark, each under a timeout, in well under 10 minutes, and writes its logs to $OUT (or
# gpu-bundle/results/).
#
#   BUILD_DIR=build-gpu  JOBS=2  bash scripts/gpu-check.sh
#   BUNDLE_MODEL_DTYPE=bf16 ...   stores the checkpoint rounded to bf16 (29 MB instead of 58 MB) when the bundle
#                                 must fit a small transfer limit; the parity tests stay valid (both backends
#                                 then compute from the same bf16-representable fp32 weights).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-2}
BUNDLE=gpu-bundle
MODEL=models/stories15M
TESTS=(cuda_host_test cuda_kernels_test cuda_attention_test cuda_sampling_test cuda_backend_test)

die() { echo "gpu-check: $*" >&2; exit 1; }
[[ -f $MODEL/model.safetensors ]] || die "$MODEL is missing: run 'make model' (scripts/fetch-model.sh) first"

if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
  # The x86 code is portable anyway (the GPU host is another machine), CUDA for sm_90 only: faster to build, H100/H200 run it.
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CUDA=ON -DLLAMA_CUDA_ARCHS=90 \
    -DLLAMA_BUILD_BENCHMARKS=OFF
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TESTS[@]}" llama-chat-cuda-bench

rm -rf "$BUNDLE"
mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/model"
for t in "${TESTS[@]}" llama-chat-cuda-bench; do
  cp "$BUILD_DIR/bin/$t" "$BUNDLE/bin/"
  strip "$BUNDLE/bin/$t"
done
# Shared libraries the binaries need, except the CUDA ones and glibc (which must match the host's loader).
skip='^(libcuda|libcudart|libcublas|libcublasLt|libnvidia|libc|libm|libdl|libpthread|librt|ld-linux[^ ]*|linux-vdso)\.so'
for t in "$BUNDLE"/bin/*; do
  ldd "$t" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] && continue
  cp -L "$path" "$BUNDLE/lib/$name"
done

cp "$MODEL/config.json" "$MODEL/tokenizer.model" "$BUNDLE/model/"
if [[ ${BUNDLE_MODEL_DTYPE:-fp32} == bf16 ]]; then
  /usr/bin/python3 - "$MODEL/model.safetensors" "$BUNDLE/model/model.safetensors" <<'PY'
import json, struct, sys
import numpy as np
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
body = raw[8 + n:]
out_header, chunks, offset = {}, [], 0
for name, info in header.items():
    if name == "__metadata__":
        out_header[name] = info
        continue
    assert info["dtype"] == "F32", name
    a, b = info["data_offsets"]
    bits = np.frombuffer(body[a:b], dtype=np.uint32)
    # Round to nearest even into the top 16 bits (bf16).
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
    out_header[name] = {"dtype": "BF16", "shape": info["shape"], "data_offsets": [offset, offset + len(rounded)]}
    chunks.append(rounded)
    offset += len(rounded)
h = json.dumps(out_header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for c in chunks:
        f.write(c)
PY
else
  cp "$MODEL/model.safetensors" "$BUNDLE/model/"
fi

cat > "$BUNDLE/run.sh" <<'RUN'
#!/usr/bin/env bash
# Runs on the GPU machine: the CUDA tests, then the decode benchmark. Logs go to $OUT (or gpu-bundle/results/).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here/results}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LLAMA_TEST_MODEL_DIR="$here/model"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/device.txt" 2>&1
cat "$out/device.txt"
failed=0
for t in cuda_host_test cuda_kernels_test cuda_attention_test cuda_sampling_test cuda_backend_test; do
  timeout 150 "$here/bin/$t" > "$out/$t.log" 2>&1
  rc=$?
  case $rc in 0) r=PASSED ;; 77) r=SKIPPED ;; 124) r="TIMED OUT"; failed=1 ;; *) r="FAILED (rc $rc)"; failed=1 ;; esac
  echo "$t: $r" | tee -a "$out/summary.txt"
  grep -E '^\[  (FAILED|PASSED|  OK) ' "$out/$t.log" | grep -v '  OK ' | tail -20
done
timeout 240 "$here/bin/llama-chat-cuda-bench" --dummy_weights llama-2-7b --dtype bf16 --context 128 --steps 64 \
  --batches 1,16,64 2>&1 | tee "$out/bench.txt"
[[ ${PIPESTATUS[0]} == 0 ]] || failed=1
exit $failed
RUN
chmod +x "$BUNDLE/run.sh"

echo "gpu-check: bundle ready in $BUNDLE/ ($(du -sh "$BUNDLE" | cut -f1)); not a git-tracked path, carry it explicitly."
if (( $(du -sm "$BUNDLE" | cut -f1) > 64 )); then
  echo "gpu-check: note: over 64 MiB; for a smaller transfer rerun with BUNDLE_MODEL_DTYPE=bf16 (about 42 MB)."
fi
echo "gpu-check: on the GPU machine, from the repository root, run:"
echo
echo "    bash $BUNDLE/run.sh"
