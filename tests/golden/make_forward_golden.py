#!/usr/bin/python3
"""Golden logits for the CPU backend's forward pass, from an independent numpy Llama implementation.

Writes two small random GQA models in the Hugging Face layout (config.json + model.safetensors, F32) and, for
each, scenario.json: a sequence of batched forward steps (prefills, a chunked prefill, decodes of several
sequences mixed in one batch, shuffled non-contiguous KV block ids) and the expected logits of every output row.

The reference never uses a KV cache: the expected logits of a row at position p of a sequence are those of a
full causal forward over that sequence's tokens 0..p, in float64. So the paging, the chunking and the batching of
the engine are checked against plain attention.

Usage: /usr/bin/python3 tests/golden/make_forward_golden.py   (from the repository root; deterministic)
"""
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

BASE_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 97,
    "max_position_embeddings": 64,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float32",
}

BLOCK_SIZE = 8
NUM_BLOCKS = 32


def make_weights(cfg, rng):
    """HF-named float32 tensors; matrices ~ N(0, 1/in) so activations stay O(1) and attention is not uniform."""
    dim, hidden = cfg["hidden_size"], cfg["intermediate_size"]
    hd = dim // cfg["num_attention_heads"]
    kv_rows = cfg["num_key_value_heads"] * hd

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t = {"model.embed_tokens.weight": rng.standard_normal((cfg["vocab_size"], dim)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(dim)
        t[p + "self_attn.q_proj.weight"] = mat(dim, dim) * 2.0  # sharper attention patterns
        t[p + "self_attn.k_proj.weight"] = mat(kv_rows, dim) * 2.0
        t[p + "self_attn.v_proj.weight"] = mat(kv_rows, dim)
        t[p + "self_attn.o_proj.weight"] = mat(dim, dim)
        t[p + "post_attention_layernorm.weight"] = norm(dim)
        t[p + "mlp.gate_proj.weight"] = mat(hidden, dim)
        t[p + "mlp.up_proj.weight"] = mat(hidden, dim)
        t[p + "mlp.down_proj.weight"] = mat(dim, hidden)
    t["model.norm.weight"] = norm(dim)
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = mat(cfg["vocab_size"], dim)
    return t


def write_safetensors(path, tensors):
    """safetensors: u64 little-endian header length, JSON header, then the raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, positions, theta, factor):
    """Rotate-half RoPE (HF apply_rotary_pos_emb). x: [seq, heads, hd]."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    freqs = np.outer(positions / factor, inv_freq)  # [seq, hd/2]
    emb = np.concatenate([freqs, freqs], axis=-1)[:, None, :]
    rotated = np.concatenate([-x[..., hd // 2:], x[..., : hd // 2]], axis=-1)
    return x * np.cos(emb) + rotated * np.sin(emb)


def forward_all_positions(cfg, t, tokens):
    """Logits [len(tokens), vocab] of a causal forward over the whole sequence (float64, no cache)."""
    w = {k: v.astype(np.float64) for k, v in t.items()}
    n = len(tokens)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // nh
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    factor = cfg.get("rope_scaling", {}).get("factor", 1.0)
    pos = np.arange(n, dtype=np.float64)
    mask = np.triu(np.full((n, n), -np.inf), k=1)
    x = w["model.embed_tokens.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = rope((h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, nh, hd), pos, theta, factor)
        k = rope((h @ w[p + "self_attn.k_proj.weight"].T).reshape(n, nkv, hd), pos, theta, factor)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(n, nkv, hd)
        k = np.repeat(k, nh // nkv, axis=1)  # query head j uses kv head j // group
        v = np.repeat(v, nh // nkv, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = np.einsum("hqk,khd->qhd", probs, v).reshape(n, nh * hd)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
    return x @ head.T


def make_scenario(cfg, rng):
    """Steps of (sequence, number of new tokens, output row offsets within the chunk)."""
    lengths = {"A": 38, "B": 13, "C": 7, "D": 21}
    tokens = {s: rng.integers(0, cfg["vocab_size"], size=n).tolist() for s, n in lengths.items()}
    steps = [
        [("B", 10, [9])],                                       # prefill B
        [("C", 5, [4]), ("B", 1, [0])],                         # prefill C + decode B
        [("B", 1, [0]), ("A", 37, [0, 7, 8, 20, 36]), ("C", 1, [0])],  # long prefill of A between decodes
        [("D", 12, [11]), ("A", 1, [0]), ("B", 1, [0])],         # first chunk of D + decodes
        [("C", 1, [0]), ("D", 9, [0, 8])],                      # second (last) chunk of D + decode C
    ]
    blocks = rng.permutation(NUM_BLOCKS).tolist()
    tables = {}
    for s, n in lengths.items():
        need = -(-n // BLOCK_SIZE)
        tables[s], blocks = blocks[:need], blocks[need:]
    return tokens, tables, steps


def write_variant(name, cfg, seed):
    rng = np.random.default_rng(seed)
    out_dir = os.path.join(HERE, name)
    os.makedirs(out_dir, exist_ok=True)
    tensors = make_weights(cfg, rng)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tokens, tables, steps = make_scenario(cfg, rng)
    full = {s: forward_all_positions(cfg, tensors, toks) for s, toks in tokens.items()}
    done = {s: 0 for s in tokens}
    out_steps = []
    for step in steps:
        seqs = []
        for s, n, rows in step:
            start = done[s]
            seqs.append({
                "seq": s, "start": start, "tokens": tokens[s][start:start + n], "output_rows": rows,
                "expected_logits": [[round(float(v), 7) for v in full[s][start + r]] for r in rows],
            })
            done[s] += n
        out_steps.append(seqs)
    scenario = {"block_size": BLOCK_SIZE, "num_blocks": NUM_BLOCKS, "block_tables": tables, "steps": out_steps}
    with open(os.path.join(out_dir, "scenario.json"), "w") as f:
        json.dump(scenario, f, separators=(",", ":"))


def main():
    write_variant("forward_gqa", dict(BASE_CONFIG, tie_word_embeddings=False), seed=1234)
    write_variant("forward_gqa_rope2",
                  dict(BASE_CONFIG, tie_word_embeddings=True, rope_scaling={"type": "linear", "factor": 2.0}),
                  seed=5678)


if __name__ == "__main__":
    main()
