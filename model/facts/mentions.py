"""An answer's tokens as the readers walk them: clauses, sentences, the vocabulary's mentions, a yes/no
opener, quantities with units."""

from __future__ import annotations

import re
from dataclasses import dataclass

from model.facts.core import QuestionInfo
from model.facts.words import (
    _CLAUSE_PUNCT,
    _CLAUSE_WORDS,
    _NUMBER_WORDS,
    _OPENER_FILLERS,
    _SENTENCE_PUNCT,
    _UNITS,
    _number,
    _Tok,
)
from schemas import vocabulary as V

__all__: list[str] = []


def _clause_bounds(toks: list[_Tok]) -> list[int]:
    """Clause number of each token (a new clause after punctuation or a clause word)."""
    out, k = [], 0
    for t in toks:
        if t.text in _CLAUSE_PUNCT or t.text in _CLAUSE_WORDS:
            k += 1
            out.append(k)
            k += 1
        else:
            out.append(k)
    return out


def _sentence_ids(toks: list[_Tok]) -> list[int]:
    out, k = [], 0
    for t in toks:
        out.append(k)
        if t.text in _SENTENCE_PUNCT:
            k += 1
    return out


@dataclass
class _M:
    kind: str
    value: object
    i: int  # first token
    j: int  # one past the last token
    neg: bool = False


def _vocab_mentions(t: str, toks: list[_Tok]) -> list[_M]:
    starts = {tok.start: k for k, tok in enumerate(toks)}
    ends = {tok.end: k + 1 for k, tok in enumerate(toks)}
    out = []
    for kind, value, s, e in V.mentions(t):
        if s in starts and e in ends:
            out.append(_M(kind, value, starts[s], ends[e]))
    return out


_YES_NO_LONGEST_FIRST = sorted(V.YES_WORDS + V.NO_WORDS, key=len, reverse=True)


def _yes_no_opener(t: str, q: QuestionInfo | None) -> tuple[str | None, int]:
    """(yes|no|None, characters consumed) from the answer's opening words."""
    head = _OPENER_FILLERS.sub("", t).lstrip(" \"'(")
    skipped = len(t) - len(head)
    yes_no_q = q is not None and q.opens_yes_no
    for word in _YES_NO_LONGEST_FIRST:
        if not re.match(rf"{re.escape(word)}(?![a-z])", head):
            continue
        rest = head[len(word):].lstrip()
        bare = rest == "" or rest[0] in ",.;:!-"
        if word == "right" and not (bare and yes_no_q):
            return None, 0  # "Right arm." is a side
        if not yes_no_q and not bare:
            return None, 0  # "No jumps." answering "how many" is a count, "not the left arm" a denial
        if q is not None and q.count_question and word in ("no", "none", "never"):
            return None, 0  # "No." to "how many times…" is a count of zero
        # a bare opener ("No, …", "Right.") is used up; "They do not jump." is read on for its facts
        return ("yes" if word in V.YES_WORDS else "no"), (skipped + len(word) if bare else 0)
    return None, 0


def _parse_quantities(t: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    t = re.sub(r"\b(\d+|" + "|".join(_NUMBER_WORDS) + r") and a half\b", lambda m: f"{_number(m.group(1)) + 0.5:g}", t)
    t = re.sub(r"\bhalf an? (?=metre|meter|second)", "0.5 ", t)
    num = r"(\d+(?:\.\d+)?|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
    unit = r"(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![a-z/])"
    pat = re.compile(rf"(?<![a-z0-9.]){num}(?:\s+(?:to|and|or)\s+{num})?\s+{unit}")
    for m in pat.finditer(t):
        u, scale = _UNITS[m.group(3)]
        for g in (m.group(1), m.group(2)):
            if g is not None:
                out.setdefault(u, []).append(_number(g) * scale)
    for m in re.finditer(r"\b(?:a |an )?(quarter|half|full) (?:turn|circle|rotation)\b|\bturns? around\b|"
                         r"\babout face\b|\bu turn\b", t):  # fmt: skip
        deg = {"quarter": 90.0, "half": 180.0, "full": 360.0}.get(m.group(1) or "", 180.0)
        out.setdefault("deg", []).append(deg)
    return out


@dataclass
class _Text:
    """An answer's text as the readers walk it: tokens, their words, clause and sentence numbers, and the token
    where the text after a yes/no opener starts."""

    t: str
    toks: list[_Tok]
    words: list[str]
    clause: list[int]
    sent: list[int]
    opener_end: int

    def prev_words(self, i: int, n: int = 4) -> list[str]:
        """Up to ``n`` words before token ``i`` in its clause, nearest first."""
        out = []
        for k in range(i - 1, max(-1, i - 1 - n), -1):
            if self.clause[k] != self.clause[i]:
                break
            out.append(self.words[k])
        return out

    def word(self, k: int) -> str:
        return self.words[k] if k < len(self.words) else ""
