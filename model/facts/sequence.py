"""Counts ("twice", "three jumps", "never") and the order of events and body parts in an answer."""

from __future__ import annotations

import re

from model.facts.core import Facts, QuestionInfo
from model.facts.mentions import _M
from model.facts.words import (
    _ADVERB_COUNTS,
    _CLAUSE_PUNCT,
    _CLAUSE_WORDS,
    _FIRST_MARKERS,
    _LAST_MARKERS,
    _ORDER_REVERSE,
    _UNITS,
    _number,
)

__all__: list[str] = []


def _counts(f: Facts, t: str, toks, words, clause, sent, ms: list[_M], q: QuestionInfo | None) -> None:
    events = [m for m in ms if m.kind == "event"]

    def nearest_event(k: int) -> str | None:
        same = [m for m in events if sent[m.i] == sent[k]]
        before = [m for m in same if m.i < k]
        if before:
            return before[-1].value
        return same[0].value if same else None

    for k, w in enumerate(words):
        nxt = words[k + 1] if k + 1 < len(words) else ""
        n = _number(w)
        if n is not None and nxt in ("time", "times") and not (k > 0 and words[k - 1] in ("at", "by")):
            f.count[nearest_event(k)] = int(n)
        elif w in _ADVERB_COUNTS:
            starts_clause = k == 0 or words[k - 1] in _CLAUSE_PUNCT or words[k - 1] in _CLAUSE_WORDS
            if w == "once" and (starts_clause and nxt not in ("", ".", ",", "!") or (k > 0 and words[k - 1] == "at")):
                continue  # "Once they land, …" / "at once"
            f.count[nearest_event(k)] = _ADVERB_COUNTS[w]
        elif (n is not None or w in ("a", "an", "single", "no", "zero")) and any(
                m.kind == "event" and m.i in (k + 1, k + 2) for m in ms):
            ev = next(m for m in ms if m.kind == "event" and m.i in (k + 1, k + 2))
            if w == "a" and not (words[k + 1] == "single" or (q is not None and q.count_question)):
                continue
            if ev.i == k + 2 and words[k + 1] not in ("single", "more", "separate", "full", "small", "big", "quick",
                                                       "short", "high", "low", "deep", "little", "total"):
                continue
            f.count[ev.value] = 0 if w in ("no", "zero") else 1 if n is None else int(n)
    if re.search(r"(?:^|[.,;:] )(?:none|zero|never)(?: at all| times?)?\s*[.!]?$", t) or \
            re.match(r"(?:none|zero|never|no|not once|not at all)(?: at all| times?)?\s*(?:[.!:;,]|$)", t):  # fmt: skip
        if q is not None and q.count_question and not f.count:
            f.count[None] = 0
    if not f.count and re.search(r"\ba (?:couple|pair) (?:of )?(?:times)?", t):
        f.count[nearest_event(0)] = 2
    if q is not None and q.count_question and not f.count:
        # a bare number answering "how many": "3.", "Three jumps.", "Just one."
        for k, w in enumerate(words):
            n = _number(w)
            nxt = words[k + 1] if k + 1 < len(words) else ""
            if n is not None and float(n).is_integer() and nxt not in _UNITS and nxt != "to":
                f.count[nearest_event(k)] = int(n)
                break


def _order(f: Facts, t: str, toks, words, sent, ms: list[_M], q: QuestionInfo | None) -> None:
    items: list[tuple[str, int]] = []
    for m in ms:
        if m.neg:
            continue
        if m.kind == "event":
            items.append((m.value, m.i))
        elif m.kind == "body_part":
            v = m.value if isinstance(m.value, str) else " ".join(x for x in m.value if x)
            items.append((v, m.i))
    seq: list[str] = []
    prev_k = -1
    pending_before = None  # "Before X, Y": Y comes first
    for idx, (item, k) in enumerate(items):
        between = words[prev_k + 1: k] if prev_k >= 0 else []
        lead = [w for w in words[(items[idx - 1][1] + 1) if idx else 0: k]]
        new_sentence = idx == 0 or sent[k] != sent[prev_k]
        if new_sentence:
            pending_before = None
            if "before" in lead:
                pending_before = item
            seq.append(item)
        elif pending_before is not None and not ({"then", "after"} & set(between)):
            seq.insert(seq.index(pending_before), item)
            pending_before = None
        elif _ORDER_REVERSE & set(between) and not ({"that", "this", "which", "wards"} & set(between)):
            at = max(i for i, x in enumerate(seq) if x == items[idx - 1][0])
            seq.insert(at, item)
        else:
            seq.append(item)
        prev_k = k
    f.order = [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]
    distinct = list(dict.fromkeys(f.order))
    if len(distinct) == 1:
        only = distinct[0]
        if _FIRST_MARKERS.search(t):
            f.first = only
        elif _LAST_MARKERS.search(t):
            f.last = only
        elif q is not None and q.which and len(items) >= 1:
            setattr(f, q.which, only)
    if q is not None and q.anchor is not None and len(distinct) >= 1 and len(distinct) <= 2:
        anchor, where = q.anchor
        others = [x for x in distinct if x != anchor]
        explicit = len(distinct) == 2 and len(f.relations()) > 0
        if others and not explicit:
            f.order = [anchor, others[0]] if where == "after" else [others[0], anchor]
