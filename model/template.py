"""The conversation template (Vicuna v1, as MotionLLM / Video-LLaVA) and its tokenization: token ids with one
placeholder token per ``<motion>`` / ``<video>``, and labels that are -100 everywhere but on the assistant's
answers (their end-of-sequence token included), so the loss is on answers only.

``SYSTEM USER: question ASSISTANT: answer</s>USER: question ASSISTANT: answer</s>``

The whole conversation is tokenized at once and answer tokens are found through the tokenizer's character
offsets, so a tokenizer that merges across piece boundaries cannot shift the labels. Placeholders are
expanded to as many copies as the encoder gives feature vectors (``expand_placeholders``); the model then
writes those vectors over the copies' embeddings.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "MOTION_TOKEN",
    "PLACEHOLDERS",
    "VIDEO_TOKEN",
    "add_placeholder_tokens",
    "encode_conversation",
    "encode_prompt",
    "expand_placeholders",
    "render_conversation",
]

IGNORE_INDEX = -100
MOTION_TOKEN = "<motion>"
VIDEO_TOKEN = "<video>"
PLACEHOLDERS = (MOTION_TOKEN, VIDEO_TOKEN)
USER, ASSISTANT = "USER", "ASSISTANT"


def add_placeholder_tokens(tokenizer) -> dict[str, int]:
    """Add ``<motion>`` / ``<video>`` as special tokens (never split, never merged); their ids."""
    from tokenizers import AddedToken

    missing = [t for t in PLACEHOLDERS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    return {t: tokenizer.convert_tokens_to_ids(t) for t in PLACEHOLDERS}


def render_conversation(conversations: list[dict], system: str, eos: str) -> tuple[str, list[tuple[int, int]]]:
    """The template's text and the character spans of the assistant's answers (leading space and eos in)."""
    text = system + " " if system else ""
    spans = []
    for i, turn in enumerate(conversations):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn["role"] != expected:
            raise ValueError(f"turn {i}: expected role {expected!r}, got {turn['role']!r}")
        if expected == "user":
            text += f"{USER}: {turn['content'].strip()} {ASSISTANT}:"
        else:
            start = len(text)
            text += " " + turn["content"].strip() + eos
            spans.append((start, len(text)))
    if not spans:
        raise ValueError("a conversation without an assistant turn has nothing to learn")
    return text, spans


def _tokenize(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if tokenizer.bos_token_id is not None:
        return [tokenizer.bos_token_id, *ids], [(0, 0), *enc["offset_mapping"]]
    return ids, list(enc["offset_mapping"])


def encode_conversation(tokenizer, conversations: list[dict], system: str) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of a whole conversation, placeholders not yet expanded."""
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no eos token: the model could not learn where an answer ends")
    text, spans = render_conversation(conversations, system, tokenizer.eos_token)
    ids, offsets = _tokenize(tokenizer, text)
    labels = [IGNORE_INDEX] * len(ids)
    for k, (start, end) in enumerate(offsets):
        if end > start and any(a <= start < b for a, b in spans):
            labels[k] = ids[k]
    if sum(1 for t, y in zip(ids, labels, strict=True) if y == tokenizer.eos_token_id) != len(spans):
        raise ValueError(f"the tokenizer did not keep {tokenizer.eos_token!r} as one token at each answer's end")
    return ids, labels


def encode_prompt(tokenizer, conversations: list[dict], system: str) -> list[int]:
    """Token ids of a conversation that ends with a user turn, up to ``ASSISTANT:``: what generation continues."""
    text, _ = render_conversation([*conversations, {"role": "assistant", "content": ""}], system, "")
    return _tokenize(tokenizer, text.rstrip())[0]


def expand_placeholders(ids, labels, counts: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each placeholder id repeated ``counts[id]`` times (labels -100 there); a count of 0 drops it."""
    ids = np.asarray(ids, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64) if labels is not None else np.full(len(ids), IGNORE_INDEX)
    repeats = np.ones(len(ids), dtype=np.int64)
    for token_id, n in counts.items():
        repeats[ids == token_id] = n
    return np.repeat(ids, repeats), np.repeat(labels, repeats)
