#!/usr/bin/env bash
# A manual cross-check of our GGUF writer against llama.cpp itself (not part of `make test`: node-llama-cpp
# 3.22.1 and its prebuilt llama.cpp binaries take ~725 MB, installed into a temporary directory and removed).
# For each of f32, f16, q8_0, q4_0: `llama-chat convert --to_gguf` writes stories15M, llama.cpp loads the file and
# decodes "Once upon a time" greedily (BOS + the prompt ids, fp32 KV cache, no flash attention, no penalties), and
# its text must equal `llama-chat generate --model FILE.gguf --temperature 0` on the same file.
#   bash tests/golden/check_gguf_with_llamacpp.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-build}/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && echo '{"name":"llamacpp-check","private":true,"type":"module"}' >package.json &&
  npm install --no-audit --no-fund --loglevel=error node-llama-cpp@3.22.1 >/dev/null)
cat >"$work/greedy.mjs" <<'JS'
import {getLlama} from "node-llama-cpp";
const [modelPath, steps] = process.argv.slice(2);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 256, threads: 2, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const prompt = [model.tokens.bos, ...model.tokenize("Once upon a time")];
const out = [];
for await (const token of context.getSequence().evaluate(prompt, {temperature: 0})) {
  out.push(token);
  if (out.length >= Number(steps)) break;
}
console.log(model.detokenize([...prompt.slice(1), ...out]));
JS
status=0
for type in f32 f16 q8_0 q4_0; do
  gguf="$work/stories15M-$type.gguf"
  "$BIN/llama-chat" convert --model models/stories15M --to_gguf "$gguf" --gguf_type "$type" >/dev/null
  theirs=$(node "$work/greedy.mjs" "$gguf" 59)
  ours=$("$BIN/llama-chat" generate --model "$gguf" --prompt "Once upon a time" --temperature 0 --max_tokens 59 \
    --threads 2 2>/dev/null)
  if [[ $theirs == "$ours" ]]; then
    echo "$type: llama.cpp and llama-chat print the same 59 greedy tokens"
  else
    printf '%s: DIFFERENT\n  llama.cpp:  %s\n  llama-chat: %s\n' "$type" "$theirs" "$ours"
    status=1
  fi
done
exit $status
