"""Reading an answer into its facts (``parse_answer``), in context and as an answer to its question."""

from __future__ import annotations

import re

from model.facts.compare import _shared, compare
from model.facts.context import _negation, _read_mentions, _unlisted_words
from model.facts.core import Facts, QuestionInfo
from model.facts.mentions import (
    _M,
    _clause_bounds,
    _parse_quantities,
    _sentence_ids,
    _Text,
    _vocab_mentions,
    _yes_no_opener,
)
from model.facts.sequence import _counts, _order
from model.facts.words import (
    _IN_PLACE_WORDS,
    _LIMB_OF,
    _NEGATIONS,
    _SIDE_OF,
    _TRAVEL_VERBS,
    _TRAVEL_WORDS,
    _VAGUE_COUNT,
    MAX_CHARS,
    _tokens,
    prepare,
)
from schemas import vocabulary as V

__all__ = ["parse_answer"]


def parse_answer(text: str, question: QuestionInfo | None = None) -> Facts:
    """The facts ``text`` states (an answer to ``question``, which decides how a bare "yes"-like opener,
    "the left one" or a bare number are read)."""
    t = prepare((text or "")[:MAX_CHARS])
    f = Facts()
    if question is not None and question.options:
        f.option = _option_letter(t, question)
    yn, consumed = _yes_no_opener(t, question)
    f.yes_no = yn
    toks = _tokens(t)
    opener_end = next((k for k, tok in enumerate(toks) if tok.start >= consumed), len(toks)) if consumed else 0
    tx = _Text(t, toks, [tok.text for tok in toks], _clause_bounds(toks), _sentence_ids(toks), opener_end)
    ms = [m for m in _vocab_mentions(t, toks) if m.i >= opener_end]
    covered = set()
    for m in ms:
        covered |= set(range(m.i, m.j))
    kept = _read_mentions(tx, ms, f, covered, question)
    kept += _unlisted_words(tx, covered)  # words the vocabulary does not have: "back", unsided and plural limbs
    kept.sort(key=lambda m: (m.i, m.j))
    covered = set()
    for m in kept:
        covered |= set(range(m.i, m.j))
    negated = _negation(tx, covered)
    for m in kept:
        m.neg = m.neg or negated[m.i]
    _fill(f, kept, t, toks, tx.words, tx.clause, tx.sent, negated, covered, question)
    if question is not None:
        _as_an_answer_to(f, kept, tx, question)
    return f


def _as_an_answer_to(f: Facts, kept: list[_M], tx: _Text, question: QuestionInfo) -> None:
    """What the facts mean as an answer to ``question``: an implicit yes/no, a "no" that denies the question's
    proposition, "hardly" to "how fast", a bare yes/no to "does the person turn", an option by its content."""
    if question.yes_no and f.yes_no is None:
        f.yes_no = _implicit_yes_no(f, kept, tx.words, tx.sent, question)
    if question.yes_no and f.yes_no == "no":
        _deny_proposition(f, question.facts)  # "No, the left arm does not move the most then."
    if "pace" in question.asks and not f.pace and re.search(r"\b(?:hardly|barely|scarcely)\b", tx.t):
        f.pace.add("still")  # "How fast …?" → "Hardly at all."
    if "turn" in question.asks and not f.turn and not f.neg.get("turn") and f.yes_no:
        f.turn.add("none" if f.yes_no == "no" else "some")  # "Does the person turn, and which way?" → "No."
    if question.options and f.option is None:
        f.option = _option_by_content(f, question)


def _deny_proposition(f: Facts, asked: Facts) -> None:
    """A "no" to a yes/no question denies what the question proposes, also where the answer repeats it before
    its negation ("No, the left arm does not move the most"): those values move from stated to denied."""
    for kind in ("direction", "turn", "event", "body_part", "pace"):
        said = getattr(f, kind) & getattr(asked, kind)
        if said:
            getattr(f, kind).difference_update(said)
            f.neg.setdefault(kind, set()).update(said)


def _option_by_content(f: Facts, q: QuestionInfo) -> str | None:
    """The one option whose facts the answer states without contradicting them ("They move backward." → B)."""
    plain = QuestionInfo("")
    fits = [k for k, text in q.options.items() if _shared(opt := parse_answer(text), f)
            and compare(opt, f, plain).status != "contradiction"]  # fmt: skip
    return fits[0] if len(fits) == 1 else None


def _implicit_yes_no(f: Facts, ms: list[_M], words: list[str], sent: list[int], q: QuestionInfo) -> str | None:
    """A yes/no answer without a yes/no word: "That is false." / "The person does not jump." (no) / "They
    jump twice." (yes, when it states what the question asks about)."""
    first = [w for k, w in enumerate(words) if sent[k] == 0]
    for w in first:
        if w in ("true", "correct"):
            return "yes"
        if w in ("false", "incorrect", "wrong"):
            return "no"
    in_first = [m for m in ms if sent[m.i] == 0]
    if any(w in _NEGATIONS for w in first) or any(m.neg for m in in_first):
        return "no"
    asked = q.facts
    for m in in_first:
        value = (_SIDE_OF[m.value], _LIMB_OF[m.value]) if m.kind == "body_part" and isinstance(m.value, str) else m.value
        if m.kind in ("event", "direction", "turn", "pace", "body_part") and value in getattr(asked, m.kind):
            return "yes"
    return None


def _option_letter(t: str, q: QuestionInfo) -> str | None:
    letters = "".join(q.options).lower()
    for pat in (rf"^\(?([{letters}])\)", rf"^\(?([{letters}])\s*[.:,]?\s*$", rf"^([{letters}])\s*[.:-]\s",
                rf"\b(?:option|answer|choice)(?: is)?:?\s*\(?([{letters}])\b", rf"\(([{letters}])\)",
                rf"(?:^|\s)([{letters}])\)"):  # fmt: skip
        m = re.search(pat, t)
        if m:
            return m.group(1).upper()
    return None


def _fill(f: Facts, ms: list[_M], t: str, toks, words, clause, sent, negated, covered, q: QuestionInfo | None):
    neg: dict[str, set] = {}
    for m in ms:
        value = m.value
        if m.kind == "body_part" and isinstance(value, str):
            value = (_SIDE_OF[value], _LIMB_OF[value])
        if m.neg:
            neg.setdefault(m.kind, set()).add(value)
            if m.kind == "event":
                f.count.setdefault(value, 0)
            continue
        if m.kind == "body_part":
            f.body_part.add(value)
        elif m.kind == "event":
            f.event.add(value)
            if value.endswith("above head"):
                f.implied_parts.add((value.split()[0], "arm"))
        elif m.kind in ("direction", "turn", "pace", "side"):
            getattr(f, m.kind).add(value)
    # a raised hand in words the vocabulary does not list: "lifts their left arm", "raises both hands up"
    for m in re.finditer(r"\b(?:raises?|raising|raised|lifts?|lifting|lifted|puts?|putting)\b(?: up)?(?: (?:the|their|his|"
                         r"her|its|both))? (?:(left|right) (?:hand|arm)|(hands|arms)(?= (?:up|above|over|overhead)))", t):  # fmt: skip
        k = next((i for i, tok in enumerate(toks) if tok.start >= m.start()), 0)
        if not negated[k]:
            for s in ([m.group(1)] if m.group(1) else V.SIDES):
                f.event.add(f"{s} hand above head")
                f.implied_parts.add((s, "arm"))
    f.neg = neg
    # travel without a direction, in place without the vocabulary's forms
    if _TRAVEL_WORDS.search(t) and not _negated_match(_TRAVEL_WORDS, t, toks, negated):
        f.direction.add("travel")
    if _IN_PLACE_WORDS.search(t):
        f.direction.add("in place")
    for k, w in enumerate(words):
        if w in _TRAVEL_VERBS - {"back", "head"} and negated[k]:
            rest = [m for m in ms if m.i > k and clause[m.i] == clause[k] and m.kind == "direction"]
            subject_part = any(m.kind == "body_part" and m.i < k and sent[m.i] == sent[k] for m in ms)
            if not rest and not subject_part:
                f.direction.add("in place")  # "does not move (much)", "does not go anywhere"
    if "still" in f.pace and not (f.direction - {"in place"}):
        f.direction.add("in place")  # standing still is not travelling
    if f.direction - {"travel", "in place"}:
        f.direction.discard("travel")  # a direction said is more than "travels"
    if re.search(r"\bturns? around\b|\babout face\b|\bu turn\b", t) and not f.turn - {"none"}:
        f.turn.add("around")
    if not f.turn and re.search(r"\b(?:turns|turned|turning|rotates|rotated|rotating|spins|spinning)\b", t) and \
            not any(negated[k] for k, w in enumerate(words) if w.startswith(("turn", "rotat", "spin"))):  # fmt: skip
        f.turn.add("some")
    # a bare side to a question that names one limb: "Which arm?" → "The left one."
    if f.side and not f.body_part and q is not None and q.limb:
        f.body_part |= {(s, q.limb) for s in f.side}
    f.quantity = _parse_quantities(t)
    _counts(f, t, toks, words, clause, sent, ms, q)
    if _VAGUE_COUNT.search(t) and not f.count:
        f.vague_count = True
    _order(f, t, toks, words, sent, ms, q)


def _negated_match(pattern: re.Pattern, t: str, toks, negated) -> bool:
    m = pattern.search(t)
    k = next((i for i, tok in enumerate(toks) if tok.start >= m.start()), None)
    return k is not None and negated[k]
