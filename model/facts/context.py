"""The vocabulary's mentions read in context — the words that mean two things ("back", "head", "left",
"still") — the words the vocabulary does not have, and negation."""

from __future__ import annotations

from model.facts.core import Facts, QuestionInfo
from model.facts.mentions import _M, _Text
from model.facts.words import (
    _LIMB_WORDS,
    _NEGATIONS,
    _POSSESSIVE,
    _POSTURE_STEMS,
    _STOP_CONTEXT,
    _SUBJECTS,
    _TORSO,
    _TORSO_WORDS,
    _TRAVEL_VERBS,
    _TURN_STEMS,
)
from schemas import vocabulary as V

__all__: list[str] = []


def _read_mentions(tx: _Text, ms: list[_M], f: Facts, covered: set, question: QuestionInfo | None) -> list[_M]:
    """The vocabulary's mentions read in context: each kept, read as another kind, or dropped (a word that
    means something else here)."""
    kept: list[_M] = []
    folded = -1  # mentions up to this token were folded into the one before ("does not turn" + "left")
    for m in ms:
        if m.i < folded:
            continue
        if _head_not_a_part(tx, m, f, covered) or _side_word(tx, m, kept, covered) or \
                _direction_in_context(tx, m, kept, question) or _still_adverb(tx, m):  # fmt: skip
            continue
        if m.kind == "turn" and m.value == "none" and tx.word(m.j) in V.SIDES:
            kept.append(_M("turn", tx.word(m.j), m.i, m.j + 1, neg=True))  # "does not turn left"
            covered.add(m.j)
            folded = m.j + 1
            continue
        kept.append(m)
    return kept


_HEAD_VERB_NEXT = {"to", "toward", "towards", "forward", "forwards", "back", "backward", "backwards", "off", "out",
                   "left", "right", "straight", "over", "into", "away", "home", "for", "in", "down", "up"}  # fmt: skip
_ABOVE_HEAD = (["the", "above"], ["the", "over"], ["their", "above"], ["their", "over"], ["his", "above"],
               ["her", "above"], ["his", "over"], ["her", "over"])  # fmt: skip


def _head_not_a_part(tx: _Text, m: _M, f: Facts, covered: set) -> bool:
    """"head" as a verb ("they head to the left": travel) or a place ("above the head"): not the body part."""
    if not (m.kind == "body_part" and m.value == _TORSO and tx.words[m.i] in ("head", "heads") and m.j - m.i == 1):
        return False
    before = tx.prev_words(m.i)
    if (before and before[0] in _SUBJECTS | {"to", "will", "then"}) or tx.word(m.j) in _HEAD_VERB_NEXT:
        covered.add(m.i)
        f.direction.add("travel")
        return True  # "they head to the left": a verb
    return before[:2] in _ABOVE_HEAD or bool(before and before[0] in ("above", "overhead"))


def _side_word(tx: _Text, m: _M, kept: list[_M], covered: set) -> bool:
    """A side word that is a bare side ("the left one"), part of a limb ("left thigh", "left and right legs"),
    or a verb ("nothing is left")."""
    if not (m.kind == "direction" and m.value in V.SIDES):
        return False
    words, nxt = tx.words, tx.word(m.j)
    if nxt in ("side", "one", "ones") or nxt in _LIMB_WORDS:  # "the left one", "left thigh"
        if nxt in _LIMB_WORDS:
            kept.append(_M("body_part", (m.value, _LIMB_WORDS[nxt]), m.i, m.j + 1))
            covered.add(m.j)
        else:
            kept.append(_M("side", m.value, m.i, m.j))
        return True
    if nxt == "and" and m.j + 2 < len(words) and words[m.j + 1] in V.SIDES and words[m.j + 2] in _LIMB_WORDS:
        limb = _LIMB_WORDS[words[m.j + 2]]
        kept += [_M("body_part", (s, limb), m.i, m.j + 3) for s in V.SIDES]
        covered |= {m.j, m.j + 1, m.j + 2}
        return True
    before = tx.prev_words(m.i)
    return words[m.i] == "left" and m.j - m.i == 1 and bool(before) and before[0] in {
        "is", "was", "are", "were", "be", "been", "has", "have", "had", "gets", "got", "nothing", "none"}  # a verb


def _direction_in_context(tx: _Text, m: _M, kept: list[_M], question: QuestionInfo | None) -> bool:
    """A direction word after a turn ("turn to the left or to the right", "rotates to the left": a turn), after
    a posture verb ("leans forward": nothing), or answering "which way does the person turn?"."""
    if m.kind != "direction":
        return False
    if m.value in V.SIDES and kept and kept[-1].kind == "turn" and kept[-1].value in V.SIDES and \
            set(tx.words[kept[-1].j: m.i]) <= {"or", "and", ",", "not", "then"}:  # fmt: skip
        kept.append(_M("turn", m.value, m.i, m.j))  # "turn to the left or to the right"
        return True
    near = []  # the words before it, back to its verb's subject
    for w in tx.prev_words(m.i)[:3]:
        if w in _SUBJECTS or w in _STOP_CONTEXT:
            break
        near.append(w)
    turn_first = next((w for w in near if w.startswith(_TURN_STEMS) or w.startswith(_POSTURE_STEMS)
                       or w in _TRAVEL_VERBS), None)  # fmt: skip
    if turn_first and turn_first.startswith(_TURN_STEMS) and turn_first not in _TRAVEL_VERBS:
        if m.value in V.SIDES:
            kept.append(_M("turn", m.value, m.i, m.j))
        return True  # "rotates to the left": a turn; "turns forward": nothing
    if turn_first and turn_first.startswith(_POSTURE_STEMS) and turn_first not in _TRAVEL_VERBS:
        return True  # "leans forward", "looks to the left": not travel
    if question is not None and "turn" in question.asks and m.value in V.SIDES and turn_first is None:
        kept.append(_M("turn", m.value, m.i, m.j))  # "Which way does the person turn?" → "To the left."
        return True
    return False


def _still_adverb(tx: _Text, m: _M) -> bool:
    """"still moving": an adverb, not the pace."""
    if not (m.kind == "pace" and m.value == "still" and tx.words[m.i] == "still" and m.j - m.i == 1):
        return False
    nxt = tx.word(m.j)
    return nxt.endswith("ing") or nxt in {"moves", "move", "walks", "walk", "runs", "travels", "goes", "there",
                                          "has", "have", "is", "are", "does", "do", "in", "on", "a", "the"}


def _unlisted_words(tx: _Text, covered: set) -> list[_M]:
    """Mentions of words the vocabulary does not have: "back" (a direction after a travel verb, the torso after
    "the"/"their"), torso words, unsided and plural limbs ("the arm", "both arms", "the legs")."""
    kept: list[_M] = []
    words = tx.words
    for k, w in enumerate(words):
        if k in covered or k < tx.opener_end:
            continue
        before = tx.prev_words(k)
        nxt = tx.word(k + 1)
        if w == "back":
            if nxt == "and" and k + 2 < len(words) and words[k + 2] == "forth":
                continue
            if before and (before[0] in _TRAVEL_VERBS or before[0] in ("walking", "walks", "walk", "runs", "run",
                                                                        "running", "jumps", "jump", "hops")):
                kept.append(_M("direction", "backward", k, k + 1))
            elif before and before[0] in _POSSESSIVE:
                kept.append(_M("body_part", (None, _TORSO), k, k + 1))
            continue
        if w in _TORSO_WORDS and before and before[0] in _POSSESSIVE:
            kept.append(_M("body_part", (None, _TORSO), k, k + 1))
            continue
        if w in _LIMB_WORDS:
            limb = _LIMB_WORDS[w]
            plural = w.endswith("s") or w == "feet"
            sides = [None]  # "the arm"
            if (before and before[0] == "both") or (plural and (not before or before[0] in {
                    "the", "their", "his", "her", "two", "its"})):  # fmt: skip
                sides = list(V.SIDES)  # "both arms", "the legs"
            kept += [_M("body_part", (s, limb), k, k + 1) for s in sides]
    return kept


def _negation(tx: _Text, covered: set) -> list[bool]:
    """Per token: negated, from a negation word outside any mention to the end of its clause."""
    negated, active = [False] * len(tx.words), False
    for k, w in enumerate(tx.words):
        if k and tx.clause[k] != tx.clause[k - 1]:
            active = False
        negated[k] = active
        if w in _NEGATIONS and k not in covered and k >= tx.opener_end:
            active = True
    return negated
