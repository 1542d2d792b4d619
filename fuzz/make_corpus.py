#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (fuzz/README.md). Every seed is built here from the formats'
specs (safetensors, GGUF v3, the protobuf wire format of proto/llamachat/v1/chat.proto), small (a few KB in all per
target), and deterministic: running this again rewrites the same bytes. Usage: fuzz/make_corpus.py"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# A tiny llama: dim 8, 2 heads (head_dim 4), 1 kv head, 1 layer, ffn 16, vocab 8.
DIM, HEADS, KV_HEADS, LAYERS, FFN, VOCAB = 8, 2, 1, 1, 16, 8
HEAD_DIM = DIM // HEADS


def hf_tensors(tied, vocab=VOCAB):
    t = [("model.embed_tokens.weight", [vocab, DIM])]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", [DIM]), (p + "self_attn.q_proj.weight", [HEADS * HEAD_DIM, DIM]),
              (p + "self_attn.k_proj.weight", [KV_HEADS * HEAD_DIM, DIM]),
              (p + "self_attn.v_proj.weight", [KV_HEADS * HEAD_DIM, DIM]),
              (p + "self_attn.o_proj.weight", [DIM, HEADS * HEAD_DIM]),
              (p + "post_attention_layernorm.weight", [DIM]), (p + "mlp.gate_proj.weight", [FFN, DIM]),
              (p + "mlp.up_proj.weight", [FFN, DIM]), (p + "mlp.down_proj.weight", [DIM, FFN])]
    t.append(("model.norm.weight", [DIM]))
    if not tied:
        t.append(("lm_head.weight", [vocab, DIM]))
    return t


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def safetensors(tensors, dtype="F32", metadata=None):
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    header, data, off = {}, b"", 0
    for i, (name, shape) in enumerate(tensors):
        n = numel(shape) * size
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        # Small distinct values (0x3c00 is 1.0 in F16; 0x3f80 is 1.0 in BF16).
        if dtype == "F32":
            data += b"".join(struct.pack("<f", (i + j % 7) / 8.0) for j in range(numel(shape)))
        else:
            data += struct.pack("<H", 0x3C00 if dtype == "F16" else 0x3F80) * numel(shape)
        off += n
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def config(tied, **extra):
    c = {"architectures": ["LlamaForCausalLM"], "hidden_size": DIM, "intermediate_size": FFN,
         "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
         "vocab_size": VOCAB, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
         "tie_word_embeddings": tied, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    c.update(extra)
    return json.dumps(c)


def checkpoint_corpus():
    t = "checkpoint_fuzzer"
    write(t, "f32_untied", config(False).encode() + b"\0" +
          safetensors(hf_tensors(False), "F32", {"format": "pt"}))
    write(t, "f16_tied", config(True, rope_scaling={"type": "linear", "factor": 2.0}).encode() + b"\0" +
          safetensors(hf_tensors(True), "F16"))
    write(t, "bf16_tied", config(True, torch_dtype="bfloat16").encode() + b"\0" + safetensors(hf_tensors(True), "BF16"))
    write(t, "reward_config_only", config(False, num_labels=1, architectures=["LlamaForSequenceClassification"]))
    write(t, "bad_json", '{"hidden_size": 8, "intermediate_size": ')
    write(t, "empty_header", b"{}\0" + struct.pack("<Q", 2) + b"{}")


# GGUF v3 (ggml docs/gguf.md).
U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10
GGML_F32, GGML_F16 = 0, 1


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gvalue(vtype, v):
    if vtype == U32:
        return struct.pack("<I", v)
    if vtype == I32:
        return struct.pack("<i", v)
    if vtype == F32:
        return struct.pack("<f", v)
    if vtype == BOOL:
        return struct.pack("<B", 1 if v else 0)
    if vtype == STRING:
        return gstr(v)
    if vtype == U64:
        return struct.pack("<Q", v)
    etype, items = v
    return struct.pack("<IQ", etype, len(items)) + b"".join(gvalue(etype, x) for x in items)


GGUF_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
              "lm_head.weight": "output.weight", "input_layernorm.weight": "attn_norm.weight",
              "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
              "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
              "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
              "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}


def gguf_name(hf):
    if hf in GGUF_NAMES:
        return GGUF_NAMES[hf]
    parts = hf.split(".")  # model.layers.N.rest
    return f"blk.{parts[2]}." + GGUF_NAMES[".".join(parts[3:])]


# SentencePiece takes byte fallback only with all 256 byte pieces: the small vocab has none, the byte one all.
VOCAB_PIECES = ["<unk>", "<s>", "</s>", "\u2581", "\u2581a", "b", "\u2581ab", "a"]
VOCAB_TYPES = [2, 3, 3, 1, 1, 1, 1, 1]
BYTE_PIECES = VOCAB_PIECES[:3] + ["<0x%02X>" % b for b in range(256)] + VOCAB_PIECES[3:]
BYTE_TYPES = VOCAB_TYPES[:3] + [6] * 256 + VOCAB_TYPES[3:]


def gguf(tied, ggml_type=GGML_F32, with_vocab=True, version=3, alignment=None, byte_pieces=False):
    pieces, types = (BYTE_PIECES, BYTE_TYPES) if byte_pieces else (VOCAB_PIECES, VOCAB_TYPES)
    vocab = len(pieces)
    kv = [("general.architecture", STRING, "llama"), ("llama.context_length", U32, 64),
          ("llama.embedding_length", U32, DIM), ("llama.block_count", U32, LAYERS),
          ("llama.feed_forward_length", U32, FFN), ("llama.attention.head_count", U32, HEADS),
          ("llama.attention.head_count_kv", U32, KV_HEADS), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
          ("llama.rope.freq_base", F32, 10000.0), ("llama.rope.dimension_count", U32, HEAD_DIM)]
    if alignment:
        kv.append(("general.alignment", U32, alignment))
    if with_vocab:
        kv += [("tokenizer.ggml.model", STRING, "llama"), ("tokenizer.ggml.tokens", ARRAY, (STRING, pieces)),
               ("tokenizer.ggml.scores", ARRAY, (F32, [-float(i) for i in range(vocab)])),
               ("tokenizer.ggml.token_type", ARRAY, (I32, types)), ("tokenizer.ggml.bos_token_id", U32, 1),
               ("tokenizer.ggml.eos_token_id", U32, 2), ("tokenizer.ggml.add_space_prefix", BOOL, True)]
    else:
        kv.append(("llama.vocab_size", U32, vocab))
    align = alignment or 32
    infos, data = b"", b""
    elem = 4 if ggml_type == GGML_F32 else 2
    for name, shape in hf_tensors(tied, vocab):
        dims = list(reversed(shape))
        data += b"\0" * (-len(data) % align)
        infos += gstr(gguf_name(name)) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ggml_type, len(data))
        data += (struct.pack("<f", 0.5) if ggml_type == GGML_F32 else struct.pack("<H", 0x3800)) * numel(shape)
    out = b"GGUF" + struct.pack("<IQQ", version, len(hf_tensors(tied, vocab)), len(kv))
    out += b"".join(gstr(k) + struct.pack("<I", t) + gvalue(t, v) for k, t, v in kv) + infos
    out += b"\0" * (-len(out) % align)
    return out + data


def gguf_corpus():
    t = "gguf_fuzzer"
    write(t, "f32_untied_vocab", gguf(False))
    write(t, "f16_tied_byte_vocab_v2", gguf(True, GGML_F16, version=2, byte_pieces=True))
    write(t, "f32_tied_no_vocab_align64", gguf(True, with_vocab=False, alignment=64))
    write(t, "header_only", b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    nested = gstr("x.nested") + struct.pack("<I", ARRAY) + struct.pack("<IQ", ARRAY, 1) + gvalue(ARRAY, (U32, [1, 2]))
    write(t, "nested_array", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + nested)


TEXTS = {
    "english": "Hello world! How are you today?",
    "spaces": "  two  spaces\tand a tab\nand a newline  ",
    "accents": "caf\u00e9 na\u00efve r\u00e9sum\u00e9",
    "cjk": "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u65e5\u672c\u8a9e",
    "emoji": "\U0001F600 \U0001F44D\U0001F3FD family \U0001F468\u200d\U0001F469\u200d\U0001F467",
    "chat_tags": "[INST] <<SYS>>\nBe nice.\n<</SYS>>\n\nHi [/INST] Hello </s><s>",
    "controls": "nul\x00bell\x07del\x7f",
    "digits": "3.14159 1,000,000 0x1F",
}


def tokenizer_corpus():
    for name, text in TEXTS.items():
        write("tokenizer_fuzzer", name, text)
    write("tokenizer_fuzzer", "invalid_utf8", b"ok \xff\xfe \xc3 \xe2\x82 \xed\xa0\x80 end")
    write("tokenizer_fuzzer", "lower_ids", bytes(range(0, 64)))


def dialog_corpus():
    t = "dialog_json_fuzzer"
    write(t, "user", json.dumps([{"role": "user", "content": "Hi"}]))
    write(t, "system_turns", json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "a"},
                                         {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
                                        ensure_ascii=False))
    write(t, "escapes", '[{"role":"user","content":"\\u00e9\\ud83d\\ude00\\n\\"q\\""}]')
    write(t, "unknown_field", '[{"role":"user","content":"x","name":"y"}]')
    write(t, "bad_role", '[{"role":"tool","content":"x"}]')
    write(t, "not_array", '{"role":"user"}')


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return key + varint(len(payload)) + payload


def message(role, content):  # llamachat.v1.Message: role = 1 (enum), content = 2
    return field(1, 0, role) + field(2, 2, content)


def sampling(temperature=0.0, top_p=0.0, top_k=0, penalty=0.0, seed=None, max_tokens=0, stop=(), ignore_eos=False):
    s = b""
    if temperature:
        s += field(1, 5, temperature)
    if top_p:
        s += field(2, 5, top_p)
    if top_k:
        s += field(3, 0, top_k)
    if penalty:
        s += field(4, 5, penalty)
    if seed is not None:
        s += field(5, 0, seed)
    if max_tokens:
        s += field(6, 0, max_tokens)
    for x in stop:
        s += field(7, 2, x)
    if ignore_eos:
        s += field(8, 0, 1)
    return s


SYSTEM, USER, ASSISTANT = 1, 2, 3


def chat_corpus():
    t = "chat_request_fuzzer"
    write(t, "user", field(1, 2, message(USER, "Tell me a story.")))
    write(t, "sampling_k4", field(1, 2, message(SYSTEM, "Be safe.")) + field(1, 2, message(USER, "Hi")) +
          field(2, 2, sampling(0.8, 0.9, 40, 1.1, 42, 20, ["\n\n", "The end"])) + field(3, 0, 4) + field(4, 0, 1) +
          field(5, 2, "req-1") + field(6, 0, 8))
    turns = b"".join(field(1, 2, message(USER if i % 2 == 0 else ASSISTANT, "turn %d " % i * 20)) for i in range(7))
    write(t, "long_dialog", turns + field(2, 2, sampling(max_tokens=200)))
    write(t, "bad_order", field(1, 2, message(ASSISTANT, "x")) + field(1, 2, message(USER, "[INST] y")))
    write(t, "bad_sampling", field(1, 2, message(USER, "x")) + field(2, 2, sampling(temperature=1000.0, top_p=2.0)))


if __name__ == "__main__":
    checkpoint_corpus()
    gguf_corpus()
    tokenizer_corpus()
    dialog_corpus()
    chat_corpus()
