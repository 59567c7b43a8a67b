"""The conversation template: labels on the assistant's answers only, placeholders expanded in place, and
the generation prompt a prefix of the training sequence."""

import numpy as np
import pytest

from model.config import VICUNA_SYSTEM
from model.template import (
    IGNORE_INDEX,
    MOTION_TOKEN,
    VIDEO_TOKEN,
    add_placeholder_tokens,
    encode_conversation,
    encode_prompt,  # fmt: skip
    expand_placeholders,
)

CONV = [{"role": "user", "content": "<motion>\n<video>\nWhat does the person do?"},
        {"role": "assistant", "content": "someone runs forward."},
        {"role": "user", "content": "Which leg moves most?"},
        {"role": "assistant", "content": "The left leg."}]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tiny_assets):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_assets["lm"], local_files_only=True)
    add_placeholder_tokens(tok)
    return tok


def test_labels_mask_everything_but_the_answers(tokenizer):
    ids, labels = encode_conversation(tokenizer, CONV, VICUNA_SYSTEM)
    assert len(ids) == len(labels) and ids[0] == tokenizer.bos_token_id
    answer_positions = [k for k, y in enumerate(labels) if y != IGNORE_INDEX]
    assert all(labels[k] == ids[k] for k in answer_positions)
    # The labelled tokens, read back, are exactly the two answers, each closed by eos; nothing else is labelled.
    runs, run = [], []
    for y in labels:
        if y != IGNORE_INDEX:
            run.append(y)
        elif run:
            runs.append(run)
            run = []
    runs += [run] if run else []
    assert [r[-1] for r in runs] == [tokenizer.eos_token_id] * 2
    assert [tokenizer.decode(r[:-1]).strip() for r in runs] == ["someone runs forward.", "The left leg."]
    unlabelled = tokenizer.decode([i for i, y in zip(ids, labels, strict=True) if y == IGNORE_INDEX])
    assert "someone" not in unlabelled and "left leg" not in unlabelled and "Which leg" in unlabelled
    assert unlabelled.count("ASSISTANT:") == 2


def test_placeholders_expand_in_place_and_stay_unlabelled(tokenizer):
    ids, labels = encode_conversation(tokenizer, CONV, VICUNA_SYSTEM)
    m, v = tokenizer.convert_tokens_to_ids([MOTION_TOKEN, VIDEO_TOKEN])
    assert ids.count(m) == 1 and ids.count(v) == 1
    big_ids, big_labels = expand_placeholders(ids, labels, {m: 7, v: 5})
    assert len(big_ids) == len(ids) + 6 + 4
    assert (big_ids == m).sum() == 7 and (big_ids == v).sum() == 5
    assert (big_labels[(big_ids == m) | (big_ids == v)] == IGNORE_INDEX).all()
    start = ids.index(m)
    assert (big_ids[start : start + 7] == m).all() and big_ids[start + 7] != m  # then "\n", then the video's
    assert (big_ids[start + 8 : start + 13] == v).all() and big_ids[start + 13] != v
    # everything else keeps its order and labels
    keep = (big_ids != m) & (big_ids != v)
    assert big_ids[keep].tolist() == [i for i in ids if i not in (m, v)]
    assert big_labels[keep].tolist() == [y for i, y in zip(ids, labels, strict=True) if i not in (m, v)]
    assert np.array_equal(expand_placeholders(ids, labels, {m: 0, v: 1})[0], [i for i in ids if i != m])


def test_generation_prompt_is_the_training_prefix(tokenizer):
    ids, labels = encode_conversation(tokenizer, CONV[:2], VICUNA_SYSTEM)
    prompt = encode_prompt(tokenizer, CONV[:1], VICUNA_SYSTEM)
    first_answer = next(k for k, y in enumerate(labels) if y != IGNORE_INDEX)
    assert ids[:first_answer] == prompt


def test_bad_conversations_are_refused(tokenizer):
    with pytest.raises(ValueError, match="expected role"):
        encode_conversation(tokenizer, [CONV[1], CONV[0]], VICUNA_SYSTEM)
    with pytest.raises(ValueError, match="nothing to learn"):
        encode_conversation(tokenizer, CONV[:1], VICUNA_SYSTEM)


# A ChatML-style template (SmolLM2-Instruct's shape) closing each turn with the tokenizer's eos.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")  # fmt: skip


def test_the_tokenizers_own_chat_template(tiny_assets):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_assets["lm"], local_files_only=True)
    add_placeholder_tokens(tok)
    with pytest.raises(ValueError, match="the tokenizer has no chat template"):
        encode_conversation(tok, CONV, VICUNA_SYSTEM, "tokenizer")
    tok.chat_template = CHATML
    ids, labels = encode_conversation(tok, CONV, "Be brief.", "tokenizer")
    assert ids[0] != tok.bos_token_id  # the template writes the start of the text itself
    text = tok.decode(ids)
    assert text.startswith("<|im_start|>system\nBe brief.</s>") and text.count("<|im_start|>assistant\n") == 2
    runs, run = [], []
    for y in [*labels, IGNORE_INDEX]:
        if y != IGNORE_INDEX:
            run.append(y)
        elif run:
            runs, run = [*runs, run], []
    assert [r[-1] for r in runs] == [tok.eos_token_id] * 2  # each answer's closing eos is learned, nothing after it
    assert [tok.decode(r[:-1]) for r in runs] == ["someone runs forward.", "The left leg."]
    prompt = encode_prompt(tok, CONV[:1], "Be brief.", "tokenizer")
    first_answer = next(k for k, y in enumerate(labels) if y != IGNORE_INDEX)
    assert ids[:first_answer] == prompt
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"  # never closes an answer with eos
    with pytest.raises(ValueError, match="does not close an answer"):
        encode_conversation(tok, CONV, "", "tokenizer")
