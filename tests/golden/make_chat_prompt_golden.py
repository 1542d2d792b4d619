#!/usr/bin/python3
"""Writes chat_prompt_cases.json: LLaMA 2-Chat prompt token ids made the way Meta's reference does it.

An independent re-implementation of `Llama.chat_completion` from Meta's llama/generation.py (the dialog ->
token ids part), using Python sentencepiece with the LLaMA 2 tokenizer.model. Nothing here calls project code.
Truncation cases follow the project's policy (DESIGN §4): drop the oldest completed (user, assistant) pairs until
the ids fit, keeping the system message folded into the first kept user message.

Run: /usr/bin/python3 tests/golden/make_chat_prompt_golden.py [path/to/tokenizer.model]
"""
import hashlib
import json
import os
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models", ".cache", "tokenizer.model")
MODEL_SHA256 = "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347"

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"


def fold_system(dialog):
    """The reference folds a leading system message into the first user message."""
    if dialog[0]["role"] != "system":
        return list(dialog)
    return [{"role": dialog[1]["role"],
             "content": B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"]}] + list(dialog[2:])


def chat_completion_ids(sp, dialog):
    """Meta's chat_completion prompt construction (bos=True per turn, eos=True after each completed pair)."""
    dialog = fold_system(dialog)
    assert all(m["role"] == "user" for m in dialog[::2])
    assert all(m["role"] == "assistant" for m in dialog[1::2])
    assert dialog[-1]["role"] == "user"
    ids = []
    for prompt, answer in zip(dialog[::2], dialog[1::2]):
        ids += [sp.bos_id()] + sp.encode(
            f"{B_INST} {(prompt['content']).strip()} {E_INST} {(answer['content']).strip()} ") + [sp.eos_id()]
    ids += [sp.bos_id()] + sp.encode(f"{B_INST} {(dialog[-1]['content']).strip()} {E_INST}")
    return ids


def truncated_ids(sp, dialog, max_prompt_tokens):
    """Drops the oldest (user, assistant) pairs, keeping the system message, until the ids fit; None if never."""
    system = [dialog[0]] if dialog[0]["role"] == "system" else []
    turns = dialog[len(system):]
    for dropped in range((len(turns) - 1) // 2 + 1):
        ids = chat_completion_ids(sp, system + turns[2 * dropped:])
        if max_prompt_tokens == 0 or len(ids) <= max_prompt_tokens:
            return ids, dropped
    return None, None


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


SYSTEM = ("You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
          "while being safe.")
PADDING = " \t\n\u3000\u00a0\u2028\x1c\x85"  # ASCII and Unicode whitespace that Python's str.strip() removes

DIALOGS = {
    "one_user": [u("Hello")],
    "system_one_user": [s(SYSTEM), u("What is the capital of France?")],
    "two_turns": [u("Hi!"), a("Hello! How can I help you today?"), u("Tell me a joke.")],
    "system_two_turns": [s("Answer in one word."), u("Color of the sky?"), a("Blue."), u("And grass?")],
    "system_three_turns": [s(SYSTEM), u("I need a recipe."), a("Sure, what do you have?"),
                           u("Eggs and flour."), a("Make pancakes."), u("How many eggs?")],
    "four_turns_padded": [u("  first  "), a("\tone\n"), u("\n\nsecond\n"), a("  two"), u("third\t"),
                          a("three   "), u("   fourth   ")],
    "system_padded_everywhere": [s(PADDING + "Be brief." + PADDING), u(PADDING + "Why?" + PADDING),
                                 a(PADDING + "Because." + PADDING), u(PADDING + "Really?" + PADDING)],
    "unicode": [s("Réponds en français. 日本語も大丈夫。"), u("Привет! 🚀 Что такое 龘齉?"),
                a("Это редкие иероглифы 😶‍🌫️ ✅"), u("ខ្ញុំចង់ដឹង ¿y tú? ½ Ωmega")],
    "empty_and_blank_contents": [s(""), u(""), a("   "), u("\u3000")],
    "whitespace_only_user": [u(" \n\t ")],
    "not_python_whitespace": [u("\u180bx\u180e"), a("\u200bzero width\u200b"), u("\ufeffbom\ufeff")],
    "near_miss_tags": [s("<<SYS> and [INST are fine"), u("[/INST is fine, so is <</SYS> and [inst]"),
                       a("text <s> and </s> are just text"), u("ok")],
    "newlines_and_tabs": [u("line one\nline two\n\n\tindented"), a("a\r\nb"), u("c\r\n")],
}

# (dialog name, max_prompt_tokens): the truncation cases; limits are derived from the untruncated lengths below.
TRUNCATION = [
    ("system_three_turns", "full"),
    ("system_three_turns", "full-1"),
    ("system_three_turns", "last_only"),
    ("four_turns_padded", "full-1"),
    ("four_turns_padded", "last_only"),
    ("two_turns", "last_only"),
]


def main():
    with open(MODEL, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == MODEL_SHA256, "unexpected tokenizer.model"
    sp = spm.SentencePieceProcessor(model_file=MODEL)
    cases = []
    for name, dialog in DIALOGS.items():
        ids, dropped = truncated_ids(sp, dialog, 0)
        cases.append({"name": name, "dialog": dialog, "max_prompt_tokens": 0, "dropped_turns": dropped,
                      "token_ids": ids})
    for name, limit_kind in TRUNCATION:
        dialog = DIALOGS[name]
        full = len(chat_completion_ids(sp, dialog))
        system = [dialog[0]] if dialog[0]["role"] == "system" else []
        last_only = len(chat_completion_ids(sp, system + [dialog[-1]]))
        limit = {"full": full, "full-1": full - 1, "last_only": last_only}[limit_kind]
        ids, dropped = truncated_ids(sp, dialog, limit)
        cases.append({"name": f"{name}@{limit_kind}", "dialog": dialog, "max_prompt_tokens": limit,
                      "dropped_turns": dropped, "token_ids": ids})
        if limit_kind == "last_only":  # one token less cannot fit at all
            cases.append({"name": f"{name}@last_only-1", "dialog": dialog, "max_prompt_tokens": limit - 1,
                          "dropped_turns": None, "token_ids": None, "needed_tokens": last_only})
    whitespace = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    out = {
        "source": "tests/golden/make_chat_prompt_golden.py (Meta llama chat_completion rules, sentencepiece "
                  + spm.__version__ + ")",
        "python_whitespace_code_points": whitespace,
        "cases": cases,
    }
    path = os.path.join(HERE, "chat_prompt_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")


if __name__ == "__main__":
    main()
