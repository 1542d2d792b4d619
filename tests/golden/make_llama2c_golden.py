#!/usr/bin/python3
"""Golden data for the llama2.c -> Hugging Face converter, from numpy, independent of the C++ code.

Reads models/.cache/stories15M.bin (karpathy llama2.c legacy format) and writes llama2c/stories15M_golden.json:

  * q_proj / k_proj rows of a few (layer, head) pairs in the Hugging Face "rotate-half" layout, produced with the
    reshape/transpose form of HF's convert_llama_weights_to_hf.py permutation (rows (h, i, two) -> (h, two, i));
    only the first COLS columns of each row are stored (the permutation acts on rows).
  * GQA k_proj / v_proj rows after mean-pooling the key/value heads into G groups (G = 2, 3), in float64.
  * logits of a float64 forward of the original model over a short prompt, run exactly as llama2.c's run.c does
    (interleaved RoPE pairs (2i, 2i+1) on the raw weights): the top ids and values per position.
  * greedy continuations (GREEDY_STEPS tokens) of that prompt by the mean-pooled GQA models (G = 2, 3), with the
    smallest top-1/top-2 logit gap seen, so an fp32 engine can be held to the same tokens.

Before writing, the script proves the permutation is the right one: a second forward that uses the HF rotate-half
RoPE on the *permuted* q/k weights must give the same logits (to 1e-9), and the same forward on the *unpermuted*
weights must not. So the stored rows are the rows an HF-convention engine needs.

Usage: /usr/bin/python3 tests/golden/make_llama2c_golden.py   (from the repository root; deterministic)
Needs models/.cache/stories15M.bin (scripts/fetch-model.sh downloads it) and python3-sentencepiece.
"""
import json
import os

import numpy as np
import sentencepiece

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "models/.cache/stories15M.bin")
TOKENIZER = os.path.join(ROOT, "models/.cache/tokenizer.model")
OUT = os.path.join(ROOT, "tests/golden/llama2c/stories15M_golden.json")
COLS = 16
PROMPT = "Once upon a time, there was a little"
TOP = 10
GREEDY_STEPS = 6


def read_llama2c(path):
    header = np.fromfile(path, dtype="<i4", count=7)
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = (int(v) for v in header)
    shared = vocab > 0
    vocab = abs(vocab)
    floats = np.fromfile(path, dtype="<f4", offset=28)
    hs = dim // heads
    kv_dim = kv_heads * hs
    sizes = [
        ("emb", (vocab, dim)), ("rms_att", (layers, dim)), ("wq", (layers, dim, dim)),
        ("wk", (layers, kv_dim, dim)), ("wv", (layers, kv_dim, dim)), ("wo", (layers, dim, dim)),
        ("rms_ffn", (layers, dim)), ("w1", (layers, hidden, dim)), ("w2", (layers, dim, hidden)),
        ("w3", (layers, hidden, dim)), ("rms_final", (dim,)), ("freq_real", (seq_len, hs // 2)),
        ("freq_imag", (seq_len, hs // 2)),
    ]
    if not shared:
        sizes.append(("wcls", (vocab, dim)))
    w, pos = {}, 0
    for name, shape in sizes:
        n = int(np.prod(shape))
        w[name] = floats[pos:pos + n].reshape(shape).astype(np.float64)
        pos += n
    assert pos == floats.size, (pos, floats.size)
    w["wcls"] = w["emb"] if shared else w["wcls"]
    cfg = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, vocab=vocab, seq_len=seq_len)
    return cfg, w


def hf_permute(m, n_heads):
    """Rows (head, i, two) -> (head, two, i): interleaved RoPE pairs to rotate-half halves."""
    rows, cols = m.shape
    return m.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def rmsnorm(x, g):
    return x / np.sqrt(np.mean(x * x) + 1e-5) * g


def rope_interleaved(v, pos, hs):
    out = v.copy()
    for i in range(0, v.size, 2):
        freq = 1.0 / 10000.0 ** ((i % hs) / hs)
        c, s = np.cos(pos * freq), np.sin(pos * freq)
        out[i], out[i + 1] = v[i] * c - v[i + 1] * s, v[i] * s + v[i + 1] * c
    return out


def rope_rotate_half(v, pos, hs):
    half = hs // 2
    inv_freq = 1.0 / 10000.0 ** (np.arange(0, hs, 2) / hs)
    ang = np.concatenate([pos * inv_freq, pos * inv_freq])
    out = np.empty_like(v)
    for h in range(v.size // hs):
        x = v[h * hs:(h + 1) * hs]
        rot = np.concatenate([-x[half:], x[:half]])
        out[h * hs:(h + 1) * hs] = x * np.cos(ang) + rot * np.sin(ang)
    return out


def forward(cfg, w, tokens, wq, wk, rope):
    """Full causal forward in float64; returns logits [len(tokens), vocab]."""
    dim, heads, kv_heads = cfg["dim"], cfg["heads"], cfg["kv_heads"]
    hs = dim // heads
    group = heads // kv_heads
    x = w["emb"][tokens].copy()  # [T, dim]
    for l in range(cfg["layers"]):
        xb = np.stack([rmsnorm(r, w["rms_att"][l]) for r in x])
        q = np.stack([rope(wq[l] @ r, p, hs) for p, r in enumerate(xb)])  # [T, dim]
        k = np.stack([rope(wk[l] @ r, p, hs) for p, r in enumerate(xb)])  # [T, kv_dim]
        v = xb @ w["wv"][l].T
        att_out = np.zeros_like(q)
        for t in range(len(tokens)):
            for h in range(heads):
                kh = h // group
                qh = q[t, h * hs:(h + 1) * hs]
                scores = k[:t + 1, kh * hs:(kh + 1) * hs] @ qh / np.sqrt(hs)
                p = np.exp(scores - scores.max())
                p /= p.sum()
                att_out[t, h * hs:(h + 1) * hs] = p @ v[:t + 1, kh * hs:(kh + 1) * hs]
        x = x + att_out @ w["wo"][l].T
        xb = np.stack([rmsnorm(r, w["rms_ffn"][l]) for r in x])
        a = xb @ w["w1"][l].T
        hb = a / (1.0 + np.exp(-a)) * (xb @ w["w3"][l].T)
        x = x + hb @ w["w2"][l].T
    x = np.stack([rmsnorm(r, w["rms_final"]) for r in x])
    return x @ w["wcls"].T


def pool_heads(m, kv_heads, groups):
    """[kv_heads * hs, cols] -> [groups * hs, cols]: new head g = mean of heads g*r .. (g+1)*r-1."""
    r = kv_heads // groups
    return m.reshape(groups, r, -1, m.shape[-1]).mean(axis=1).reshape(-1, m.shape[-1])


def greedy_gqa(cfg, w, wq_hf, wk_hf, tokens, groups):
    c = dict(cfg, kv_heads=groups)
    wk = np.stack([pool_heads(m, cfg["kv_heads"], groups) for m in wk_hf])
    wg = dict(w, wv=np.stack([pool_heads(m, cfg["kv_heads"], groups) for m in w["wv"]]))
    toks, min_gap = list(tokens), float("inf")
    for _ in range(GREEDY_STEPS):
        last = forward(c, wg, toks, wq_hf, wk, rope_rotate_half)[-1]
        top2 = np.sort(last)[-2:]
        min_gap = min(min_gap, float(top2[1] - top2[0]))
        toks.append(int(np.argmax(last)))
    return toks[len(tokens):], min_gap


def rows(m, head, hs):
    return m[head * hs:(head + 1) * hs, :COLS].tolist()


def main():
    cfg, w = read_llama2c(BIN)
    heads, kv_heads, hs = cfg["heads"], cfg["kv_heads"], cfg["dim"] // cfg["heads"]
    wq_hf = np.stack([hf_permute(m, heads) for m in w["wq"]])
    wk_hf = np.stack([hf_permute(m, kv_heads) for m in w["wk"]])

    sp = sentencepiece.SentencePieceProcessor(model_file=TOKENIZER)
    tokens = [1] + sp.encode(PROMPT)
    meta = forward(cfg, w, tokens, w["wq"], w["wk"], rope_interleaved)
    hf = forward(cfg, w, tokens, wq_hf, wk_hf, rope_rotate_half)
    wrong = forward(cfg, w, tokens, w["wq"], w["wk"], rope_rotate_half)
    assert np.abs(meta - hf).max() < 1e-9, np.abs(meta - hf).max()
    assert np.abs(meta - wrong).max() > 1e-2, "unpermuted weights should not match"

    golden = {"cols": COLS, "head_dim": hs, "q_proj": [], "k_proj": [], "gqa": [], "forward": {}}
    for layer, head in [(0, 0), (0, 5), (3, 2), (5, 4)]:
        golden["q_proj"].append({"layer": layer, "head": head, "rows": rows(wq_hf[layer], head, hs)})
    for layer, head in [(0, 0), (2, 1), (5, 5)]:
        golden["k_proj"].append({"layer": layer, "head": head, "rows": rows(wk_hf[layer], head, hs)})
    for g_count in (2, 3):
        r = kv_heads // g_count
        for layer, g in [(0, 0), (4, g_count - 1)]:
            k = wk_hf[layer].reshape(kv_heads, hs, -1)[g * r:(g + 1) * r].mean(axis=0)
            v = w["wv"][layer].reshape(kv_heads, hs, -1)[g * r:(g + 1) * r].mean(axis=0)
            golden["gqa"].append({"kv_heads": g_count, "layer": layer, "group": g,
                                  "k_rows": k[:, :COLS].tolist(), "v_rows": v[:, :COLS].tolist()})
    top = np.argsort(-meta, axis=1)[:, :TOP]
    golden["forward"] = {
        "prompt": PROMPT, "tokens": tokens,
        "top_ids": top.tolist(),
        "top_logits": [[float(meta[t, i]) for i in top[t]] for t in range(len(tokens))],
        "greedy_next": int(np.argmax(meta[-1])),
    }
    golden["gqa_greedy"] = []
    for g_count in (2, 3):
        ids, gap = greedy_gqa(cfg, w, wq_hf, wk_hf, tokens, g_count)
        assert gap > 1e-2, f"near tie in the G={g_count} greedy continuation: {gap}"
        golden["gqa_greedy"].append({"kv_heads": g_count, "ids": ids, "min_top2_gap": gap, "text": sp.decode(ids)})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: tokens {tokens}, greedy next {golden['forward']['greedy_next']} "
          f"({sp.id_to_piece(golden['forward']['greedy_next'])!r}); |meta - hf| = {np.abs(meta - hf).max():.2e}")


if __name__ == "__main__":
    main()
