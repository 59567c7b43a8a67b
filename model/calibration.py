"""The judge's hard calibration set, built per run from the bench's own references: each picked reference
once minimally contradicted (one fact's words swapped for another value's: left↔right, forward↔backward,
arm↔leg, one↔three, yes↔no, order swapped, jump↔crouch, in place↔travelling, …), which the judge must call
wrong, and once paraphrased (a fact's words swapped for another form of the same value — "left" → "to the
left", "2 times" → "twice", a number moved within tolerance — plus a hedge such as "I think"), which it must
call right. The edits take their words from ``schemas/vocabulary.py``.

A run passes calibration when at least :data:`CONTRADICTIONS_MIN` of the contradictions are judged wrong and
at least :data:`PARAPHRASES_MIN` of the paraphrases right (the issue's targets); ``movid score`` then exits 0,
else 1 with the rates and the misjudged examples in the report.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter

import numpy as np

from schemas import vocabulary as V

__all__ = ["CONTRADICTIONS_MIN", "PARAPHRASES_MIN", "calibration_report", "calibration_set", "contradictions",
           "paraphrase"]  # fmt: skip

CONTRADICTIONS_MIN = 0.95
PARAPHRASES_MIN = 0.90

_OPPOSITE_DIRECTION = {"left": "right", "right": "left", "forward": "backward", "backward": "forward"}
_OTHER_PACE = {"still": "running pace", "slow": "running pace", "walking pace": "still", "running pace": "slow"}
_OTHER_EVENT = {"jump": "crouch", "crouch": "jump", "walk": "run", "run": "walk"}
_EDIT_NAMES = {"direction": "left↔right / forward↔backward", "in_place": "in place↔travelling",
               "turn": "turn left↔right↔none", "body_part": "arm↔leg", "side": "left↔right side",
               "event": "jump↔crouch / walk↔run", "count": "one↔three", "yes_no": "yes↔no", "order": "order swapped",
               "pace": "pace", "number": "number off", "option": "another option"}  # fmt: skip
_TABLES = {"direction": V.DIRECTIONS, "turn": V.TURNS, "body_part": V.BODY_PARTS, "event": V.EVENTS, "pace": V.PACES}
_COUNT_PHRASE = re.compile(r"(?<![a-z0-9.])(\d+|zero|one|two|three|four|five|six|seven|eight|nine|ten) times?(?![a-z])"
                           r"|(?<![a-z])(once|twice|thrice)(?![a-z])")  # fmt: skip
_NUMBER_UNIT = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?=\s*(?:m/s|m\b|metres|meters|s\b|seconds|degrees))")
_WORD_OF = {n: w for w, n in V.NUMBER_WORDS.items() if " " not in w and w not in ("no", "none", "zero", "once", "twice",
                                                                                   "thrice")}  # fmt: skip
_ADVERB_OF = {1: "once", 2: "twice"}


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"calib:{seed}:{key}".encode()).hexdigest()


def _case_like(surface: str, new: str) -> str:
    return new[:1].upper() + new[1:] if surface[:1].isupper() else new


def _splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + _case_like(text[start:end], new) + text[end:]


def _form_like(surface: str, forms: tuple[str, ...], rng: np.random.Generator | None, exclude: str = "") -> str | None:
    """A form of ``forms`` shaped like ``surface``: the same index when the tables align ("left arm" → "left
    leg", "jumps" → "crouches"), else one with the same first word or word count."""
    cands = [f for f in forms if f != exclude]
    if not cands:
        return None
    if rng is None:
        return cands[0]
    first, n = surface.split()[0], len(surface.split())
    for pick in ([f for f in cands if f.split()[0] == first], [f for f in cands if len(f.split()) == n], cands):
        if pick:
            return pick[int(rng.integers(len(pick)))]
    return None


def _aligned(surface: str, forms_from: tuple[str, ...], forms_to: tuple[str, ...]) -> str:
    i = forms_from.index(surface) if surface in forms_from else 0
    return forms_to[i] if i < len(forms_to) else forms_to[0]


def _is_yes_no_question(question: str) -> bool:
    from model.facts import parse_question

    return parse_question(question).yes_no


def _denies(low: str, at: int) -> bool:
    """Whether a negation ("not", "never", "no", "without") opens the clause that ``at`` is in."""
    clause = re.split(r"[,;:.!?]|\b(?:and|but|then)\b", low[:at])[-1]
    return bool(re.search(r"\b(?:not|never|no|without|none|n't)\b", clause))


def contradictions(answer: str, question: str, rng: np.random.Generator) -> dict[str, str]:
    """edit kind → the answer minimally edited to contradict it (one kind per fact the answer states)."""
    low = answer.lower()
    if len(low) != len(answer):
        return {}
    out: dict[str, str] = {}
    ms = V.mentions(low)
    if re.match(r"\s*(?:no|nope|false|incorrect)\b", low) and _is_yes_no_question(question):
        ms = []  # "No, the left arm does not move the most": only flipping the no contradicts it
    _swap_words(answer, low, ms, out)
    _order_and_count(answer, low, ms, out)
    _flip_yes_no_and_number(answer, low, question, out)
    return out


def _swap_words(answer: str, low: str, ms: list, out: dict[str, str]) -> None:
    """One contradiction per fact family from the vocabulary mentions: a direction, turn, body part, side,
    event or pace swapped for another value's words."""
    for fact, value, s, e in ms:
        surface = low[s:e]
        if _denies(low, s):
            continue  # "never squats" → "never hops" is another claim, not a contradiction
        if fact == "direction" and value in _OPPOSITE_DIRECTION and "direction" not in out:
            out["direction"] = _splice(answer, s, e, _aligned(surface, V.DIRECTIONS[value],
                                                              V.DIRECTIONS[_OPPOSITE_DIRECTION[value]]))
        if fact == "direction" and "in_place" not in out:
            other = "forward" if value == "in place" else "in place"
            out["in_place"] = _splice(answer, s, e, V.DIRECTIONS[other][0] if other == "forward" else "in place")
        if fact == "turn" and "turn" not in out:
            other = {"left": "right", "right": "left", "none": "left"}[value]
            out["turn"] = _splice(answer, s, e, _aligned(surface, V.TURNS[value], V.TURNS[other])
                                  if value != "none" else "turn left")
        if fact == "body_part" and "body_part" not in out:
            side, _, limb = value.partition(" ")
            if value.split()[0] in V.SIDES:
                other = f"{side} {'leg' if limb == 'arm' else 'arm'}"
                out["body_part"] = _splice(answer, s, e, _aligned(surface, V.BODY_PARTS[value], V.BODY_PARTS[other]))
                flip = f"{'right' if side == 'left' else 'left'} {limb}"
                out["side"] = _splice(answer, s, e, _aligned(surface, V.BODY_PARTS[value], V.BODY_PARTS[flip]))
            else:
                out["body_part"] = _splice(answer, s, e, V.BODY_PARTS["left leg"][0])
        if fact == "event" and "event" not in out:
            if value in _OTHER_EVENT:
                out["event"] = _splice(answer, s, e, _aligned(surface, V.EVENTS[value], V.EVENTS[_OTHER_EVENT[value]]))
            elif value.endswith("above head"):
                flip = ("right" if value.startswith("left") else "left") + value[value.index(" "):]
                out["side"] = _splice(answer, s, e, _aligned(surface, V.EVENTS[value], V.EVENTS[flip]))
        if fact == "pace" and "pace" not in out:
            out["pace"] = _splice(answer, s, e, _aligned(surface, V.PACES[value], V.PACES[_OTHER_PACE[value]]))


def _order_and_count(answer: str, low: str, ms: list, out: dict[str, str]) -> None:
    """Two events (or body parts) swapped in time order; a count changed (or a denied event stated)."""
    items = [(fact, v, s, e) for fact, v, s, e in ms if fact in ("event", "body_part")]
    pair = next(((a[1:], b[1:]) for i, a in enumerate(items) for b in items[i + 1:] if a[0] == b[0] and a[1] != b[1]),
                None)  # two events (or two body parts) named in time order
    if pair:
        (_, s1, e1), (_, s2, e2) = pair
        out["order"] = answer[:s1] + answer[s2:e2] + answer[e1:s2] + answer[s1:e1] + answer[e2:]
    m = _COUNT_PHRASE.search(low)
    if m:
        word = m.group(1) or m.group(2)
        n = int(word) if word.isdigit() else V.NUMBER_WORDS.get(word, 3 if word == "thrice" else 0)
        new_n = {0: 2, 1: 3}.get(n, 1)
        new = (f"{new_n} times" if word.isdigit() else f"{_WORD_OF.get(new_n, new_n)} times") if m.group(1) else \
            _ADVERB_OF.get(new_n, f"{_WORD_OF.get(new_n, new_n)} times")  # fmt: skip
        out["count"] = _splice(answer, m.start(), m.end(), new)
    else:
        neg = re.search(r"\b(do|does|did) not (?=\w)", low)
        if neg and any(f == "event" and s >= neg.end() for f, _, s, _ in ms):
            out["count"] = answer[: neg.start()] + answer[neg.end():]  # "They do not jump." → "They jump."


def _flip_yes_no_and_number(answer: str, low: str, question: str, out: dict[str, str]) -> None:
    """The yes/no opener of an answer to a yes/no question flipped; a number with a unit moved well out of
    tolerance."""
    if _is_yes_no_question(question):
        opener = re.match(r"\s*(yes|yeah|yep|true|correct|no|nope|false|incorrect)\b", low)
        if opener:
            flip = {"yes": "no", "yeah": "no", "yep": "nope", "true": "false", "correct": "incorrect", "no": "yes",
                    "nope": "yep", "false": "true", "incorrect": "correct"}[opener.group(1)]  # fmt: skip
            out["yes_no"] = _splice(answer, opener.start(1), opener.end(1), flip)
    num = _NUMBER_UNIT.search(answer)
    if num:
        x = float(num.group(1))
        decimals = len(num.group(1).split(".")[1]) if "." in num.group(1) else 0
        new = x * 2.5 + 3 if x < 1 else x * 2.5
        out["number"] = _splice(answer, num.start(1), num.end(1), f"{new:.{decimals}f}")


def _option_contradiction(options: dict[str, str], letter: str) -> str | None:
    """Another option, written the way the references write one ("C) to the right")."""
    others = [k for k in options if k != letter]
    if not others:
        return None
    k = others[(ord(letter) - ord("A")) % len(others)]
    return f"{k}) {options[k]}"


_HEDGES = ("I think ", "It looks like ", "", "Probably ", "I'd say ")


def paraphrase(answer: str, question: str, rng: np.random.Generator) -> tuple[str, str]:
    """(edit kind, the answer reworded without changing a fact)."""
    low = answer.lower()
    edits = []
    if len(low) == len(answer):
        for fact, value, s, e in V.mentions(low):
            if fact in _TABLES:
                new = _form_like(low[s:e], _TABLES[fact][value], rng, exclude=low[s:e])
                if new:
                    edits.append((fact, _splice(answer, s, e, new)))
        m = _COUNT_PHRASE.search(low)
        if m:
            word = m.group(1) or m.group(2)
            n = int(word) if word.isdigit() else V.NUMBER_WORDS.get(word, 3 if word == "thrice" else 0)
            new = _ADVERB_OF.get(n) if m.group(1) else f"{n} times"
            if new is None:
                new = f"{_WORD_OF.get(n, n)} times" if word.isdigit() else f"{n} times"
            edits.append(("count", _splice(answer, m.start(), m.end(), new)))
        opener = re.match(r"\s*(yes|no|true|false)\b", low)
        if opener and _is_yes_no_question(question):
            pool = [w for w in (V.YES_WORDS if opener.group(1) in ("yes", "true") else V.NO_WORDS)
                    if " " not in w and w not in ("right", "not", "never", opener.group(1))]  # fmt: skip
            edits.append(("yes_no", _splice(answer, opener.start(1), opener.end(1), pool[int(rng.integers(len(pool)))])))
        num = _NUMBER_UNIT.search(answer)
        if num:
            x = float(num.group(1))
            decimals = len(num.group(1).split(".")[1]) if "." in num.group(1) else 0
            new = f"{x * 1.1:.{max(decimals, 1 if x < 10 else 0)}f}"
            edits.append(("number", _splice(answer, num.start(1), num.end(1), new)))
    kind, text = edits[int(rng.integers(len(edits)))] if edits else ("wording", answer)
    hedge = _HEDGES[int(rng.integers(len(_HEDGES)))]
    if hedge and not re.match(r"^[A-E]\)", text):
        text = hedge + text[:1].lower() + text[1:]
    elif text == answer:
        text = answer.rstrip(".") if answer.endswith(".") else answer + "."
    return kind, text


def calibration_set(bench: list[dict], n: int = 100, seed: int = 0) -> list[dict]:
    """Up to ``n`` references (chosen by seed), each as one contradiction (``expect`` "no", the edit kind that
    has been used least so far among those that apply) and one paraphrase (``expect`` "yes")."""
    from model.facts import parse_answer, parse_question

    rank = sorted(bench, key=lambda r: _rank(seed, r["question_id"]))
    items, used = [], Counter()
    for r in rank[:n]:
        rng = np.random.default_rng(int(_rank(seed, r["question_id"])[:8], 16))
        q = parse_question(r["question"], r.get("category"))
        edits = contradictions(r["answer"], r["question"], rng)
        letter = None
        if q.options:
            letter = parse_answer(r["answer"], q).option
            edits = {}
            if letter and (other := _option_contradiction(q.options, letter)):
                edits["option"] = other
        if edits:
            kind = min(sorted(edits), key=lambda k: (used[k], _rank(seed, r["question_id"] + k)))
            used[kind] += 1
            items.append({**r, "prediction": edits[kind], "expect": "no", "edit": kind})
        if letter:
            para = (f"{letter}", "option letter") if rng.integers(2) else (f"The answer is {letter}.", "option letter")
            items.append({**r, "prediction": para[0], "expect": "yes", "edit": para[1]})
        else:
            kind, text = paraphrase(r["answer"], r["question"], rng)
            items.append({**r, "prediction": text, "expect": "yes", "edit": kind})
    return items


def calibration_report(items: list[dict], judgements: list[list], *, contradictions_min: float = CONTRADICTIONS_MIN,
                       paraphrases_min: float = PARAPHRASES_MIN) -> dict:  # fmt: skip
    """Rates of contradictions judged wrong and paraphrases judged right (over repeats), per edit kind; ``ok``
    when both reach their thresholds; up to 10 misjudged items with the judge's reason."""
    out = {}
    for expect, name, need in (("no", "contradictions", contradictions_min), ("yes", "paraphrases", paraphrases_min)):
        idx = [i for i, it in enumerate(items) if it["expect"] == expect]
        js = [(i, rep[i]) for rep in judgements for i in idx]
        valid = [(i, j) for i, j in js if j.pred is not None]
        by_kind: dict[str, list[bool]] = {}
        for i, j in valid:
            by_kind.setdefault(items[i]["edit"], []).append(j.pred == expect)
        rate = float(np.mean([j.pred == expect for _, j in valid])) if valid else math.nan
        out[name] = {"n": len(idx), "judged": len(valid), "failed": len(js) - len(valid), "rate": rate,
                     "threshold": need,
                     "by_edit": {k: {"n": len(v), "rate": float(np.mean(v)), "edit": _EDIT_NAMES.get(k, k)}
                                 for k, v in sorted(by_kind.items())}}  # fmt: skip
    misjudged = [{"question": items[i]["question"], "reference": items[i]["answer"], "prediction": items[i]["prediction"],
                  "expect": items[i]["expect"], "edit": items[i]["edit"], "judged": j.pred, "reason": getattr(j, "reason", None)}
                 for rep in judgements for i, j in enumerate(rep) if j.pred is not None and j.pred != items[i]["expect"]]  # fmt: skip
    c, p = out["contradictions"], out["paraphrases"]
    out["ok"] = bool(c["judged"] and p["judged"] and c["rate"] >= c["threshold"] and p["rate"] >= p["threshold"])
    out["misjudged"] = misjudged[:10]
    return out
