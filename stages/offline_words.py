"""The offline annotator's shared words: phrasings of directions, windows, body parts and events, the
verbs with their forms, the seeded choice that makes every wording deterministic and order-free, and the
small builders (a QA pair with its facts, a count phrase, the clip's events in time order) that the motion
QA (``stages.offline_qa``) and the captions and video QA (``stages.offline_video_qa``) share. Package-internal:
the names keep their leading underscore."""

from __future__ import annotations

import hashlib

__all__ = ["ACTIVITIES"]

_WINDOWS = {"beginning": ("at the beginning of the clip", "in the first third of the clip", "early in the clip"),
            "middle": ("in the middle of the clip", "in the middle third of the clip", "midway through the clip"),
            "end": ("towards the end of the clip", "in the last third of the clip", "at the end of the clip")}  # fmt: skip
_DIR_WORDS = {"forward": ("forward", "ahead"), "backward": ("backward", "backwards"),
              "left": ("to the left", "leftward"), "right": ("to the right", "rightward")}  # fmt: skip
_MC_DIRECTIONS = {"forward": "forward", "backward": "backward", "left": "to the left", "right": "to the right",
                  "in place": "in place"}  # fmt: skip
_MC_TURNS = {"left": "turns left", "right": "turns right", "none": "does not turn"}
_PARTS = ("left arm", "right arm", "left leg", "right leg", "torso and head")
_NUMBER_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_COUNTABLE = ("jump", "crouch")
_YES_NO_PAIRS = (("jump", "crouch"), ("left hand above head", "right hand above head"))
_PARTNER = {"jump": "crouch", "crouch": "jump"}  # what a zero count or a video's "no" asks about instead


# ------------------------------------------------------------------------------------------------ choices


class _Choices:
    """Seeded choices for one clip: each is a hash of (seed, clip key, purpose), so the same clip gets the
    same text whatever else is in its batch, and choices for different purposes are independent."""

    def __init__(self, seed: int, key: str):
        self.base = f"{seed}:{key}:"

    def _n(self, purpose: str) -> int:
        digest = hashlib.blake2b((self.base + purpose).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little")

    def index(self, purpose: str, n: int) -> int:
        return self._n(purpose) % n

    def pick(self, purpose: str, options):
        options = tuple(options)
        return options[self.index(purpose, len(options))]

    def coin(self, purpose: str, p: float = 0.5) -> bool:
        return self._n(purpose) % 1_000_000 < p * 1_000_000

    def shuffled(self, purpose: str, items) -> list:
        return sorted(items, key=lambda x: self._n(f"{purpose}/{x}"))


# ------------------------------------------------------------------------------------------------ phrases


class _Verb:
    """A verb phrase in its three forms: after "they"/"does"/"might" (base), after "the person" (third
    person singular), and as a gerund (a noun: "jumping comes first")."""

    def __init__(self, base: str, third: str, gerund: str):
        self.base, self.third, self.gerund = base, third, gerund


_v = _Verb


def _hand(side: str) -> list[_Verb]:
    return [_v(f"{verb} the {side} hand above the head", f"{third} the {side} hand above the head",
               f"{ger} the {side} hand above the head")
            for verb, third, ger in (("raise", "raises", "raising"), ("lift", "lifts", "lifting"))]  # fmt: skip


_EVENT_VERBS: dict[str, list[_Verb]] = {
    "walk": [_v("walk", "walks", "walking")],
    "run": [_v("run", "runs", "running"), _v("jog", "jogs", "jogging")],
    "jump": [_v("jump", "jumps", "jumping"), _v("jump up", "jumps up", "jumping up")],
    "crouch": [_v("crouch", "crouches", "crouching"), _v("squat", "squats", "squatting"),
               _v("crouch down", "crouches down", "crouching down")],
    "left hand above head": _hand("left"),
    "right hand above head": _hand("right"),
}  # fmt: skip
_COUNT_NOUNS = {"jump": ("jumps",), "crouch": ("squats", "crouches")}

# Why someone might move so: plausible purposes of each action (reasoning answers), no fact stated.
_PURPOSES = {
    "walk": ("Probably to get to another spot nearby.", "Most likely to go somewhere a few steps away."),
    "run": ("Probably to hurry somewhere, or as exercise.", "Most likely for exercise, or because they are in a hurry."),
    "jump": ("Probably for exercise or for fun.", "Most likely as part of a workout, or out of excitement."),
    "crouch": ("Probably as a strength exercise, or to pick something up from the floor.",
               "Most likely to train the legs, or to reach something low."),
    "hand": ("Probably to wave to someone or to get their attention.",
             "Most likely to greet someone, or to reach for something high."),
    "both hands": ("Probably to stretch, or to cheer.", "Most likely a stretch, or a gesture of celebration."),
    "wave": ("Probably to greet someone or to get their attention.", "Most likely to say hello or goodbye to someone."),
    "kick": ("Probably to kick a ball, or to practise a martial-arts move.",
             "Most likely as a kicking drill, or to kick something away."),
    "stand": ("Probably to wait or to rest for a moment.", "Most likely they are waiting for something."),
}  # fmt: skip

# What the person is most likely doing, from the events (the reasoning category's activity answer).
ACTIVITIES = {
    "crouch": ("exercising", "doing squats"), "jump": ("exercising", "jumping for fun or for exercise"),
    "run": ("jogging", "running somewhere"), "walk": ("walking somewhere", "taking a short walk"),
    "hand": ("waving or signalling to someone",), "both hands": ("stretching or cheering",),
    "none": ("standing and waiting", "resting on the spot"),
}  # fmt: skip


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _num(x: float) -> str:
    """A measured value as said: one decimal ("2.3"), two below 1 ("0.45"), no trailing zeros."""
    x = float(x)
    return f"{round(x, 2 if abs(x) < 1 else 1):g}"


def _count_phrase(n: int, ch: _Choices, purpose: str, words: bool = False) -> str:
    """"once", "twice", "three times" or "3 times" (``words``: never digits, to open a sentence); never
    "1 times" or "2 time"."""
    if n == 1:
        return ch.pick(purpose, ("once", "one time"))
    if n == 2:
        return ch.pick(purpose, ("twice", "two times"))
    word = _NUMBER_NAMES[n] if n < len(_NUMBER_NAMES) else str(n)
    return ch.pick(purpose, (f"{word} times",) if words else (f"{word} times", f"{n} times")) if n else "zero times"


def _part_verb(part: str, singular: str, plural: str) -> str:
    """The verb form that agrees with a body part ("the torso and head move", "the left arm moves")."""
    return plural if part == "torso and head" else singular


def _choice_question(stem: str, options: list[str]) -> str:
    """"<stem>: A) x, B) y, or C) z?" (the options in the order given)."""
    listed = [f"{'ABCDE'[i]}) {o}" for i, o in enumerate(options)]
    return f"{stem}: {', '.join(listed[:-1])}, or {listed[-1]}?"


def _subject(ch: _Choices, purpose: str, verb: _Verb) -> str:
    """"they <base>" or "the person <third>", chosen by seed."""
    return ch.pick(purpose, (f"they {verb.base}", f"the person {verb.third}"))


def _qa(category: str, question: str, answer: str, facts: dict, *, direction=None, body_part=None,
        count=None) -> dict:  # fmt: skip
    """One pair in the annotator's schema (``stages.annotate.qa_schema``) plus its ``facts``."""
    return {"category": category, "question": question, "answer": answer, "direction": direction,
            "body_part": body_part, "count": count, "facts": facts}  # fmt: skip


# ------------------------------------------------------------------------------------------------ motion QA


def _kinds(f: dict) -> list[dict]:
    """Each event kind once, in order of its first occurrence: {kind, n, from, to, spans}."""
    out: dict[str, dict] = {}
    for e in f["events"]:
        k = out.setdefault(e["event"], {"kind": e["event"], "n": 0, "from": e["from"], "to": e["to"], "spans": []})
        k["n"] += 1
        k["to"] = max(k["to"], e["to"])
        k["spans"].append([e["from"], e["to"]])
    return sorted(out.values(), key=lambda k: (k["from"], k["kind"]))
