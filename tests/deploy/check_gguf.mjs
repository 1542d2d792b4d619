// An independent check of our GGUF writer: llama-chat convert writes stories15M as GGUF (q8_0 matrices), and
// Hugging Face's JavaScript GGUF parser (npm @huggingface/gguf, pinned in package.json) must read it back with the
// llama metadata of models/stories15M/config.json, the tokenizer's vocab size, llama.cpp's tensor names and shapes
// ({cols, rows}), the types, and offsets aligned to 32 that tile the data section without overlap.
// Usage: node check_gguf.mjs SOURCE_DIR BIN_DIR
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { gguf } from "@huggingface/gguf";

const [sourceDir, binDir] = process.argv.slice(2);
const modelDir = path.join(sourceDir, "models", "stories15M");
const config = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"), "utf8"));
const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "check_gguf_")), "stories15M-q8_0.gguf");
execFileSync(path.join(binDir, "llama-chat"),
             ["convert", "--model", modelDir, "--to_gguf", out, "--gguf_type", "q8_0"], { stdio: "inherit" });

let failures = 0;
function expect(ok, what) {
  if (!ok) {
    console.error(`FAIL: ${what}`);
    failures++;
  }
}
const eq = (actual, expected, what) => expect(actual === expected, `${what}: ${actual} !== ${expected}`);

const { metadata: m, tensorInfos, tensorDataOffset } = await gguf(out, { allowLocalFile: true });
const n = (v) => Number(v);  // the parser gives 64-bit values as BigInt
eq(n(m.version), 3, "version");
eq(m["general.architecture"], "llama", "general.architecture");
eq(n(m["general.file_type"]), 7, "general.file_type (MOSTLY_Q8_0)");
eq(n(m["llama.context_length"]), config.max_position_embeddings, "llama.context_length");
eq(n(m["llama.embedding_length"]), config.hidden_size, "llama.embedding_length");
eq(n(m["llama.block_count"]), config.num_hidden_layers, "llama.block_count");
eq(n(m["llama.feed_forward_length"]), config.intermediate_size, "llama.feed_forward_length");
eq(n(m["llama.attention.head_count"]), config.num_attention_heads, "llama.attention.head_count");
eq(n(m["llama.attention.head_count_kv"]), config.num_key_value_heads, "llama.attention.head_count_kv");
eq(n(m["llama.rope.dimension_count"]), config.hidden_size / config.num_attention_heads, "llama.rope.dimension_count");
eq(m["llama.attention.layer_norm_rms_epsilon"], Math.fround(config.rms_norm_eps), "layer_norm_rms_epsilon");
eq(m["llama.rope.freq_base"], Math.fround(config.rope_theta), "llama.rope.freq_base");
eq(m["tokenizer.ggml.model"], "llama", "tokenizer.ggml.model");
const tokens = m["tokenizer.ggml.tokens"];
eq(tokens.length, config.vocab_size, "tokenizer.ggml.tokens length");
eq(tokens.slice(0, 4).join(" "), "<unk> <s> </s> <0x00>", "the first tokens");
eq(m["tokenizer.ggml.scores"].length, config.vocab_size, "tokenizer.ggml.scores length");
eq(m["tokenizer.ggml.token_type"].length, config.vocab_size, "tokenizer.ggml.token_type length");
eq(n(m["tokenizer.ggml.bos_token_id"]), config.bos_token_id, "bos id");
eq(n(m["tokenizer.ggml.eos_token_id"]), config.eos_token_id, "eos id");

// Tensor names, shapes (ggml order: the row first) and types: 0 = F32, 8 = Q8_0.
const dim = config.hidden_size, ffn = config.intermediate_size, vocab = config.vocab_size;
const kv = config.num_key_value_heads * (dim / config.num_attention_heads);
const expected = new Map([["token_embd.weight", [[dim, vocab], 8]], ["output_norm.weight", [[dim], 0]]]);
if (!config.tie_word_embeddings) expected.set("output.weight", [[dim, vocab], 8]);
for (let l = 0; l < config.num_hidden_layers; l++) {
  const b = `blk.${l}.`;
  expected.set(b + "attn_norm.weight", [[dim], 0]).set(b + "ffn_norm.weight", [[dim], 0]);
  expected.set(b + "attn_q.weight", [[dim, dim], 8]).set(b + "attn_k.weight", [[dim, kv], 8]);
  expected.set(b + "attn_v.weight", [[dim, kv], 8]).set(b + "attn_output.weight", [[dim, dim], 8]);
  expected.set(b + "ffn_gate.weight", [[dim, ffn], 8]).set(b + "ffn_up.weight", [[dim, ffn], 8]);
  expected.set(b + "ffn_down.weight", [[ffn, dim], 8]);
}
eq(n(m.tensor_count), expected.size, "tensor_count");
eq(tensorInfos.length, expected.size, "tensor infos");
const spans = [];
for (const t of tensorInfos) {
  const want = expected.get(t.name);
  expect(want !== undefined, `unexpected tensor ${t.name}`);
  if (!want) continue;
  eq(t.shape.map(n).join(","), want[0].join(","), `${t.name} shape`);
  eq(t.dtype, want[1], `${t.name} type`);
  const elements = t.shape.map(n).reduce((a, b) => a * b, 1);
  const bytes = t.dtype === 8 ? (elements / 32) * 34 : elements * 4;
  expect(n(t.offset) % 32 === 0, `${t.name} offset ${t.offset} not aligned to 32`);
  spans.push([n(t.offset), n(t.offset) + bytes, t.name]);
}
expect(n(tensorDataOffset) % 32 === 0, `data section at ${tensorDataOffset} not aligned to 32`);
spans.sort((a, b) => a[0] - b[0]);
for (let i = 1; i < spans.length; i++) {
  expect(spans[i][0] >= spans[i - 1][1], `${spans[i][2]} overlaps ${spans[i - 1][2]}`);
}
eq(n(tensorDataOffset) + spans[spans.length - 1][1], fs.statSync(out).size, "the last tensor ends the file");
fs.rmSync(path.dirname(out), { recursive: true });
if (failures > 0) process.exit(1);
console.log(`check_gguf: ${tensorInfos.length} tensors and ${Object.keys(m).length} metadata keys as expected`);
