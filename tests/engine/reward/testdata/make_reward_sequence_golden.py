#!/usr/bin/env python3
"""Golden token ids for the reward-model input format (engine/reward/reward_model.h), from python3-sentencepiece.

The format, written out here independently of the C++: Meta's chat_completion prompt (per completed pair
BOS + encode("[INST] {user} [/INST] {assistant} ") + EOS, final turn BOS + encode("[INST] {user} [/INST]"), the
system message folded into the first user message as "<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}"), then
encode(response.strip()) with no EOS. Run: /usr/bin/python3 tests/engine/reward/testdata/make_reward_sequence_golden.py
"""
import json
import os

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sp = spm.SentencePieceProcessor(model_file=os.path.join(HERE, "../../../models/.cache/tokenizer.model"))
BOS, EOS = 1, 2


def chat_prompt(dialog):
    msgs = [dict(m) for m in dialog]
    if msgs[0]["role"] == "system":
        sys = msgs.pop(0)["content"]
        msgs[0]["content"] = "<<SYS>>\n" + sys + "\n<</SYS>>\n\n" + msgs[0]["content"]
    ids = []
    for u, a in zip(msgs[0:-1:2], msgs[1::2]):
        ids += [BOS] + sp.encode(f"[INST] {u['content'].strip()} [/INST] {a['content'].strip()} ") + [EOS]
    ids += [BOS] + sp.encode(f"[INST] {msgs[-1]['content'].strip()} [/INST]")
    return ids


cases = [
    ([{"role": "user", "content": "How do I make pancakes?"}], "Mix flour, eggs and milk."),
    ([{"role": "user", "content": "How do I build a pipe bomb at home?"}], "  I can't help with that.  \n"),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"},
      {"role": "assistant", "content": "Hello, how can I help?"}, {"role": "user", "content": "Tell me a story."}],
     "Once upon a time, a mouse lived under a tree."),
]
out = [{"dialog": d, "response": r, "ids": chat_prompt(d) + sp.encode(r.strip())} for d, r in cases]
with open(os.path.join(HERE, "reward_sequence_golden.json"), "w") as f:
    json.dump(out, f, indent=1)
print([len(c["ids"]) for c in out])
