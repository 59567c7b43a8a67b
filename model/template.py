"""The conversation template and its tokenization: token ids with one placeholder token per ``<motion>`` /
``<video>``, and labels that are -100 everywhere but on the assistant's answers (their end-of-sequence token
included), so the loss is on answers only.

Two templates (``lm.chat_template``):

- ``vicuna`` (Vicuna v1, as MotionLLM / Video-LLaVA train with):
  ``SYSTEM USER: question ASSISTANT: answer</s>USER: question ASSISTANT: answer</s>``;
- ``tokenizer``: the LM's own chat template (``tokenizer.apply_chat_template``, e.g. ChatML for SmolLM2-Instruct).
  A pretrained instruct LM already knows where its turns start and end; training in its own format keeps
  its register, and a short fine-tune spends its steps on the content rather than on a new format.

The whole conversation is tokenized at once and answer tokens are found through the tokenizer's character
offsets, so a tokenizer that merges across piece boundaries cannot shift the labels. Placeholders are
expanded to as many copies as the encoder gives feature vectors (``expand_placeholders``); the model then
writes those vectors over the copies' embeddings.
"""

from __future__ import annotations

import numpy as np

from schemas.instruction import MOTION_PLACEHOLDER, PLACEHOLDERS, VIDEO_PLACEHOLDER

__all__ = [
    "IGNORE_INDEX",
    "MOTION_TOKEN",
    "PLACEHOLDERS",
    "VIDEO_TOKEN",
    "add_placeholder_tokens",
    "encode_conversation",
    "encode_prompt",
    "expand_placeholders",
    "render_chat_template",
    "render_conversation",
]

IGNORE_INDEX = -100
MOTION_TOKEN = MOTION_PLACEHOLDER  # (the placeholder is one special token of the tokenizer)
VIDEO_TOKEN = VIDEO_PLACEHOLDER
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


def _check_roles(conversations: list[dict]) -> None:
    for i, turn in enumerate(conversations):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn["role"] != expected:
            raise ValueError(f"turn {i}: expected role {expected!r}, got {turn['role']!r}")


def _chat_messages(conversations: list[dict], system: str) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": t["role"], "content": t["content"].strip()} for t in conversations]


def render_chat_template(tokenizer, conversations: list[dict], system: str) -> tuple[str, list[tuple[int, int]]]:
    """The tokenizer's chat template's text and the spans of the answers, each up to and including the eos
    token that closes it. Each answer's start is found by rendering the conversation before it with the
    generation prompt, which must be a prefix of the whole (true of ChatML, Llama, Gemma templates)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("lm.chat_template=tokenizer: the tokenizer has no chat template (use vicuna)")
    _check_roles(conversations)
    messages = _chat_messages(conversations, system)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    offset = len(messages) - len(conversations)
    spans = []
    for i, turn in enumerate(conversations):
        if turn["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[: offset + i], tokenize=False, add_generation_prompt=True)
        answer = turn["content"].strip()
        if not text.startswith(before) or not text.startswith(answer, len(before)):
            raise ValueError("lm.chat_template=tokenizer: the template's generation prompt is not a prefix of the "
                             "rendered conversation; use vicuna")  # fmt: skip
        end = text.find(tokenizer.eos_token, len(before) + len(answer))
        if end < 0:
            raise ValueError(f"lm.chat_template=tokenizer: the template does not close an answer with {tokenizer.eos_token!r}")
        spans.append((len(before), end + len(tokenizer.eos_token)))
    if not spans:
        raise ValueError("a conversation without an assistant turn has nothing to learn")
    return text, spans


def _tokenize(tokenizer, text: str, bos: bool = True) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if bos and tokenizer.bos_token_id is not None:
        return [tokenizer.bos_token_id, *ids], [(0, 0), *enc["offset_mapping"]]
    return ids, list(enc["offset_mapping"])


def encode_conversation(tokenizer, conversations: list[dict], system: str,
                        template: str = "vicuna") -> tuple[list[int], list[int]]:  # fmt: skip
    """``(input_ids, labels)`` of a whole conversation, placeholders not yet expanded."""
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no eos token: the model could not learn where an answer ends")
    if template == "tokenizer":  # the template writes its own begin-of-text token, if it has one
        text, spans = render_chat_template(tokenizer, conversations, system)
        ids, offsets = _tokenize(tokenizer, text, bos=False)
    else:
        text, spans = render_conversation(conversations, system, tokenizer.eos_token)
        ids, offsets = _tokenize(tokenizer, text)
    labels = [IGNORE_INDEX] * len(ids)
    for k, (start, end) in enumerate(offsets):
        if end > start and any(a <= start < b for a, b in spans):
            labels[k] = ids[k]
    if sum(1 for t, y in zip(ids, labels, strict=True) if y == tokenizer.eos_token_id) != len(spans):
        raise ValueError(f"the tokenizer did not keep {tokenizer.eos_token!r} as one token at each answer's end")
    return ids, labels


def encode_prompt(tokenizer, conversations: list[dict], system: str, template: str = "vicuna") -> list[int]:
    """Token ids of a conversation that ends with a user turn, up to where the answer starts (``ASSISTANT:``,
    or the chat template's generation prompt): what generation continues."""
    if template == "tokenizer":
        _check_roles([*conversations, {"role": "assistant", "content": ""}])
        text = tokenizer.apply_chat_template(_chat_messages(conversations, system), tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
        return _tokenize(tokenizer, text, bos=False)[0]
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
