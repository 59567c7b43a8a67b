"""The words movid's QA speaks in: the facts an answer can state (direction, turn, side, body part, event,
count, pace, order, yes/no) and the surface forms of each. The offline annotator phrases its answers with
these forms, and the offline judge (``model/score.py``) parses answers back into the same facts, so a
contradiction in any fact ("left leg" for "left arm", "moves left" for "moves forward") is visible to it.

Reading a text (:func:`mentions`, :func:`parse_facts`): lowercase, then the forms of all tables at once,
leftmost-longest and without overlaps, on word boundaries ("raise the left hand above the head" is one
``EVENTS`` mention, not a side, a body part and a direction); a form listed in two tables belongs to the
first of ``PRECEDENCE``. So a bare "left" is a direction of travel, "turn left" a turn, "left hand" a body
part. A yes/no is read from the answer's opening words only ("No, they raise the right hand." is a no, and
its "right" is a side, never "correct"). Counts are read from count phrases ("twice", "three times", "3
times", "zero times", "none"), never from other numbers (metres, seconds, degrees).

Answers the offline annotator writes keep to these rules: each fact in a form listed here, no form of a
different value of the same fact, events mentioned in time order ("First they crouch, then they jump."),
and no sentence opening with a yes/no word unless it answers a yes/no question.

:func:`question_template` is THE definition of a question template (the majority-answer baseline's key):
the data side and the judge side both call it.

Plain data and small pure functions, no movid imports: both the data side and the model side read it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from schemas.instruction import PLACEHOLDERS

__all__ = ["BODY_PARTS", "DIRECTIONS", "EVENTS", "NO_WORDS", "NUMBER_WORDS", "ORDER_WORDS", "PACES", "PRECEDENCE",
           "SIDES", "TURNS", "YES_WORDS", "mentions", "parse_facts", "question_template"]  # fmt: skip

# Travel direction over the ground, in the person's own frame at the first frame (motion_facts' convention).
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "forward": ("forward", "forwards", "ahead", "straight ahead", "to the front"),
    "backward": ("backward", "backwards", "in reverse", "to the rear"),
    "left": ("left", "to the left", "leftward", "leftwards", "sideways to the left"),
    "right": ("right", "to the right", "rightward", "rightwards", "sideways to the right"),
    "in place": ("in place", "on the spot", "in one place", "without travelling", "without traveling",
                 "stationary", "stays put", "stay put"),
}  # fmt: skip

# Turning about the vertical axis. Bare "to the left" is a direction of travel, not a turn.
TURNS: dict[str, tuple[str, ...]] = {
    "left": ("turns left", "turn left", "turning left", "turned left", "turns to the left", "turn to the left",
             "turning to the left", "counterclockwise", "anticlockwise"),
    "right": ("turns right", "turn right", "turning right", "turned right", "turns to the right",
              "turn to the right", "turning to the right", "clockwise"),
    "none": ("does not turn", "doesn't turn", "do not turn", "don't turn", "no turn", "keeps facing", "keep facing",
             "without turning"),
}  # fmt: skip

SIDES = ("left", "right")


def _sided(side: str, parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{side} {p}" for p in parts)


# Body parts as motion_facts groups the joints, and the words for each.
BODY_PARTS: dict[str, tuple[str, ...]] = {
    "left arm": _sided("left", ("arm", "hand", "wrist", "elbow", "shoulder")),
    "right arm": _sided("right", ("arm", "hand", "wrist", "elbow", "shoulder")),
    "left leg": _sided("left", ("leg", "foot", "knee", "ankle", "hip")),
    "right leg": _sided("right", ("leg", "foot", "knee", "ankle", "hip")),
    "torso and head": ("torso and head", "torso", "head", "upper body", "trunk", "chest", "spine"),
}


def _hand_up(side: str) -> tuple[str, ...]:
    """Forms of "<side> hand above head": a hand raised above the head, as verb phrases and as nouns."""
    forms = [f"{side} hand above the head", f"{side} hand above head", f"{side} hand up", f"{side} arm up",
             f"{side} hand overhead", f"{side} hand goes above the head", f"{side} hand rises above the head"]
    for verb in ("raise", "raises", "raising", "raised", "lift", "lifts", "lifting", "lifted"):
        forms += [f"{verb} the {side} hand above the head", f"{verb} the {side} hand", f"{verb} the {side} arm",
                  f"{verb} the {side} hand overhead", f"{verb} the {side} arm above the head"]
    return tuple(forms)


# Events motion_facts detects, and verb/noun forms of each. "walk"/"run" are stretches of travel on foot.
EVENTS: dict[str, tuple[str, ...]] = {
    "walk": ("walk", "walks", "walking", "walked", "stroll", "strolls", "strolling"),
    "run": ("run", "runs", "running", "ran", "jog", "jogs", "jogging", "sprint", "sprints", "sprinting"),
    "jump": ("jump", "jumps", "jumping", "jumped", "hop", "hops", "hopping", "leap", "leaps", "leaping"),
    "crouch": ("crouch", "crouches", "crouching", "crouched", "squat", "squats", "squatting", "squatted",
               "duck", "ducks", "bend down", "bends down", "bending down"),
    "left hand above head": _hand_up("left"),
    "right hand above head": _hand_up("right"),
}  # fmt: skip

# Pace of travel (motion_facts' speed bands, the mean speed over the clip). Walking/running themselves are
# EVENTS ("walks", "runs"); a pace is said with these phrases.
PACES: dict[str, tuple[str, ...]] = {
    "still": ("still", "motionless", "barely moves", "barely move", "hardly moves", "hardly move", "stands still",
              "stand still", "standing still", "barely moving"),
    "slow": ("slow", "slowly", "a slow pace", "leisurely", "a leisurely pace", "unhurried"),
    "walking pace": ("walking pace", "walking speed", "a walking pace", "a brisk walking pace"),
    "running pace": ("running pace", "running speed", "a running pace", "a jogging pace"),
}  # fmt: skip

# Words that place one mention relative to another: "X, then Y" / "first X" keep the mention order as the
# time order; "X after Y" reverses it. movid's own answers always mention events in time order.
ORDER_WORDS = {"before": ("before", "first", "earlier", "then", "followed by", "and then", "after that", "next",
                          "finally", "at first", "to begin with"),
               "after": ("after", "later", "afterwards", "following")}  # fmt: skip

YES_WORDS = ("yes", "yeah", "yep", "true", "correct", "right", "indeed", "it does", "they do", "that is true")
NO_WORDS = ("no", "nope", "false", "incorrect", "not", "never", "it does not", "they do not", "does not",
            "that is false")  # fmt: skip

NUMBER_WORDS = {"zero": 0, "no": 0, "none": 0, "one": 1, "once": 1, "a single": 1, "two": 2, "twice": 2,
                "three": 3, "three times": 3, "thrice": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                "nine": 9, "ten": 10}  # fmt: skip

# For a form listed under two facts: the fact that takes it.
PRECEDENCE = ("event", "body_part", "turn", "pace", "direction", "side")
_TABLES = {"event": EVENTS, "body_part": BODY_PARTS, "turn": TURNS, "pace": PACES, "direction": DIRECTIONS,
           "side": {s: (s,) for s in SIDES}}  # fmt: skip


@lru_cache(maxsize=1)
def _matcher() -> tuple[re.Pattern, dict[str, tuple[str, str]]]:
    owner: dict[str, tuple[str, str]] = {}
    for fact in PRECEDENCE:
        for value, forms in _TABLES[fact].items():
            for form in forms:
                owner.setdefault(form, (fact, value))
    alternation = "|".join(re.escape(f) for f in sorted(owner, key=lambda f: (-len(f), f)))
    return re.compile(rf"(?<![a-z])(?:{alternation})(?![a-z])"), owner


def mentions(text: str) -> list[tuple[str, str, int, int]]:
    """(fact, value, start, end) of each vocabulary form in ``text``, in text order, leftmost-longest."""
    pattern, owner = _matcher()
    return [(*owner[m.group(0)], m.start(), m.end()) for m in pattern.finditer(text.lower())]


_COUNT = re.compile(r"(?<![a-z0-9.])(?:(\d+)|(zero|one|two|three|four|five|six|seven|eight|nine|ten)) times?(?![a-z])"
                    r"|(?<![a-z])(once|twice|thrice|none|zero)(?![a-z])")  # fmt: skip
_OPTION = re.compile(r"^\s*(?:the answer is\s+|option\s+)?\(?([a-e])\)")
_OPENING = re.compile(r"^[\s\"'(]*([a-z' ]+?)(?=[,.;:!?]|$)")


def _yes_no(text: str) -> str | None:
    """"yes"/"no" from the opening words (up to the first punctuation): "No, they never jump." → "no"."""
    m = _OPENING.match(text.lower())
    if not m:
        return None
    head = m.group(1).strip()
    for word in sorted(YES_WORDS + NO_WORDS, key=len, reverse=True):
        # "right" opens a yes only on its own ("Right."): "Right arm." names a side
        if head == word or (head.startswith(word + " ") and word not in SIDES):
            return "yes" if word in YES_WORDS else "no"
    return None


def parse_facts(text: str) -> dict:
    """The facts a text states, in the keys of the ``facts`` column (``schemas/instruction.py``): each of
    direction, turn, side, body_part, event, pace as the list of values mentioned (text order, repeats
    dropped); ``count`` (the first count phrase), ``yes_no`` (opening words), ``option`` (a leading
    "C)"); ``order``: the events in mention order. Keys with nothing found are left out. A side is also
    reported for each sided body part or event ("left arm" → side "left")."""
    out: dict = {}
    for fact, value, _, _ in mentions(text):
        values = out.setdefault(fact, [])
        if value not in values:
            values.append(value)
        side = value.split()[0] if fact in ("body_part", "event") and value.split()[0] in SIDES else None
        if side and side not in out.setdefault("side", []):
            out["side"].append(side)
    if len(out.get("event", ())) >= 2:
        out["order"] = list(out["event"])
    m = _COUNT.search(text.lower())
    if m:
        digits, word, adverb = m.groups()
        out["count"] = int(digits) if digits else NUMBER_WORDS[word or adverb] if (word or adverb) != "thrice" else 3
    yn = _yes_no(text)
    if yn:
        out["yes_no"] = yn
    opt = _OPTION.match(text.lower())
    if opt:
        out["option"] = opt.group(1).upper()
    return {k: v for k, v in out.items() if v != []}


_PLACEHOLDERS = re.compile("|".join(map(re.escape, PLACEHOLDERS)))
_SLOT_NAMES = {fact: f"<{fact}>" for fact in PRECEDENCE}
_NUMBER = re.compile(r"(?<![a-z])\d+(?:\.\d+)?")


def question_template(question: str) -> str:
    """The question with its variable parts abstracted: the key of the majority-answer-per-template
    baseline. Lowercased; ``<motion>``/``<video>`` placeholders removed; every vocabulary mention (see
    :func:`mentions`) replaced by its fact's slot (``<event>``, ``<body_part>``, ``<turn>``, ``<pace>``,
    ``<direction>``, ``<side>``); every number by ``#``; whitespace collapsed.
    "Does the person raise the left hand above the head?" → "does the person <event>?";
    "Which body part moves most between 1.5 and 3 seconds?" → "which body part moves most between # and # seconds?"."""
    text = _PLACEHOLDERS.sub(" ", question.lower())
    pieces, last = [], 0
    for fact, _, start, end in mentions(text):
        pieces += [text[last:start], _SLOT_NAMES[fact]]
        last = end
    text = "".join(pieces) + text[last:]
    text = _NUMBER.sub("#", text)
    return " ".join(text.split())
