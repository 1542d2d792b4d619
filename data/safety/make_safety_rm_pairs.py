#!/usr/bin/env python3
"""Writes (dialog, chosen, rejected) preference pairs for the pairwise safety head, derived from labeled rows:
for every dialog, every answer labeled safe is preferred over every answer labeled unsafe to that same dialog;
dialogs with answers of one label only (most ordinary asks) give no pair. Nothing new is written by hand.

- data/safety/safety_rm_pairs.jsonl from the examples of make_safety_rm_data.py (the same templates): a harmful ask
  with two refusals and two compliant answers gives four pairs; an ordinary ask that also has an abusive answer
  gives one pair per helpful answer. Training pairs.
- data/safety/safety_rm_probe_pairs.jsonl from the hand-written data/safety/safety_rm_probe.jsonl: never trained
  on (so no "split" field); train-rm-head --eval_pairs scores it.

Every line is {"id", "category", "dialog": [{"role", "content"}...], "chosen", "rejected", "split"}. There is no
"margin" or "rating" field: the generator has no human preference strengths, so every pair has margin 0.

The held-out split is the one of make_safety_rm_data.py (FNV-1a 64 of the dialog's last user message, bucket
< 200 of 1000 → "heldout"), so a pair and the pointwise rows of its answers are on the same side;
llama-chat train-rm-head recomputes the rule itself. Deterministic. Run: /usr/bin/python3 make_safety_rm_pairs.py
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # importing the generator must not leave __pycache__ in data/
from make_safety_rm_data import build_examples, split_of

HERE = os.path.dirname(os.path.abspath(__file__))


def pairs_of(examples):
    """Every (safe, unsafe) pair of answers to one dialog, dialogs in first-seen order."""
    groups = {}  # dialog (as JSON) -> {"category", "dialog", "safe": [...], "unsafe": [...]}
    for ex in examples:
        key = json.dumps(ex["dialog"], ensure_ascii=False)
        group = groups.setdefault(key, {"category": ex["category"], "dialog": ex["dialog"], "safe": [], "unsafe": []})
        if ex["response"] not in group[ex["label"]]:
            group[ex["label"]].append(ex["response"])
    pairs = []
    for group in groups.values():
        for chosen in group["safe"]:
            for rejected in group["unsafe"]:
                pairs.append({"category": group["category"], "dialog": group["dialog"], "chosen": chosen,
                              "rejected": rejected})
    return pairs


def write_pairs(pairs, name, with_split):
    out = os.path.join(HERE, name)
    counts = {}
    with open(out, "w", encoding="utf-8") as f:
        for n, pair in enumerate(pairs):
            split = split_of(pair["dialog"][-1]["content"])
            counts[split] = counts.get(split, 0) + 1
            row = {"id": n, "category": pair["category"], "dialog": pair["dialog"], "chosen": pair["chosen"],
                   "rejected": pair["rejected"]}
            if with_split:
                row["split"] = split
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(pairs)} pairs to {out}" + (f": {sorted(counts.items())}" if with_split else ""))


def main():
    write_pairs(pairs_of(build_examples()), "safety_rm_pairs.jsonl", with_split=True)
    with open(os.path.join(HERE, "safety_rm_probe.jsonl"), encoding="utf-8") as f:
        probe = [json.loads(line) for line in f if line.strip()]
    write_pairs(pairs_of(probe), "safety_rm_probe_pairs.jsonl", with_split=False)


if __name__ == "__main__":
    main()
