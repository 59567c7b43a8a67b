"""The offline annotator's language: QA pairs, detailed captions and video QA written without an LLM, from a
clip's measured facts (``stages.motion_facts``) or a video's human captions.

What it guarantees (``tests/stages/test_annotate_language.py`` checks it over thousands of answers):

- Every answer is true to the facts, and its ``facts`` dict (the instruction table's ``facts`` column,
  documented in ``schemas/instruction.py``) says what it states, in the forms of ``schemas.vocabulary``.
- Balance, so that the answer cannot be guessed from the question: a yes/no or true/false question is only
  asked where both answers are possible, and which one is asked is a seeded coin, so every question
  template is ~50/50 (negatives name the other side, the other limb, the partner event — what a model that
  does not look could confuse; the one exception, "does the person end up where they started?", follows the
  data); multiple-choice options are shuffled; open questions about a turn are asked of clips that turn;
  counting asks about every countable event that happens (and, one time in four, about an absent partner).
- Varied, fluent English: several phrasings of each question and answer; subjects and verbs agree.
- Deterministic and order-free: every choice hashes (seed, clip id, purpose), never a shared RNG.
"""

from __future__ import annotations

import hashlib
import re

from schemas.vocabulary import mentions, parse_facts

__all__ = ["ACTIVITIES", "caption_from_facts", "motion_qa", "video_qa"]

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


def _direction_qa(f: dict, ch: _Choices) -> list[dict]:
    d, dist = f["direction"], _num(f["distance_m"])
    out = []
    q = ch.pick("travel.q", ("In which direction does the person travel?", "Which way does the person move over "
                             "the ground?", "Where does the person go during the clip?"))  # fmt: skip
    if d == "in place":
        a = ch.pick("travel.a", ("They stay in place.", "The person stays on the spot.",
                                 "Nowhere: they stay in one place.", "The person stays in place."))  # fmt: skip
        facts = {"direction": d}
    else:
        w = ch.pick("travel.w", _DIR_WORDS[d])
        verb = ch.pick("travel.v", (_v("move", "moves", "moving"), _v("travel", "travels", "travelling")))
        a = ch.pick("travel.a", (f"{_cap(_subject(ch, 'travel.s', verb))} {w} about {dist} m.",
                                 f"{_cap(w)}, about {dist} m in all.",
                                 f"{_cap(_subject(ch, 'travel.s', verb))} {w}."))  # fmt: skip
        facts = {"direction": d} | ({"distance_m": f["distance_m"]} if "about" in a else {})
    out.append(_qa("direction", q, a, facts, direction=d))

    # yes/no on travel: only "does the person stay in place?" (its answer follows the data, ~50/50 in
    # HumanML3D-like data); "does the person move <d>?" would give the answer away through <d>, since the
    # directions are far from equally common (forward ≫ backward)
    q = ch.pick("place.q", ("Does the person end up where they started?", "Does the person finish about where "
                            "they began?", "Does the person stay in place?"))  # fmt: skip
    if d == "in place":
        a = ch.pick("place.a", ("Yes, they stay in place.", "Yes.", "Yes, the person stays on the spot."))
        out.append(_qa("reasoning", q, a, {"direction": "in place", "yes_no": "yes"}, direction="in place"))
    else:
        a = ch.pick("place.a", ("No, they do not stay in place.", "No.", "No, the person does not stay on the spot."))
        out.append(_qa("reasoning", q, a, {"direction": "in place", "yes_no": "no"}))

    # multiple choice: the five directions in a seeded order
    options = ch.shuffled("travel.mc", list(_MC_DIRECTIONS))
    letter = "ABCDE"[options.index(d)]
    q = ch.pick("travel.mc.q", ("Which way does the person travel", "In which direction does the person move"))
    q = _choice_question(q, [_MC_DIRECTIONS[o] for o in options])
    a = ch.pick("travel.mc.a", (f"{letter}) {_MC_DIRECTIONS[d]}.", f"The answer is {letter}) {_MC_DIRECTIONS[d]}."))
    out.append(_qa("direction", q, a, {"direction": d, "option": letter}, direction=d))

    # turning
    t, deg = f["turn"], abs(int(f["turn_deg"]))
    if t != "none":
        q = ch.pick("turn.q", ("Which way does the person turn?", "In which direction does the person turn?",
                               "Does the person turn to the left or to the right?"))  # fmt: skip
        a = ch.pick("turn.a", (f"They turn {t}, by about {deg} degrees.", f"The person turns {t}.",
                               f"The person turns to the {t}, about {deg} degrees in all."))  # fmt: skip
        out.append(_qa("direction", q, a, {"turn": t} | ({"turn_deg": deg} if "degrees" in a else {}), direction=t))
        yes = ch.coin("turn.yn")
        asked = t if yes else {"left": "right", "right": "left"}[t]
        q = ch.pick("turn.yn.q", (f"Does the person turn {asked}?", f"True or false: the person turns {asked}."))
        if q.startswith("True"):
            a = f"True: the person turns {asked}." if yes else ch.pick("turn.yn.a", ("False.", "False: the person never turns " f"{asked}."))  # fmt: skip
        else:
            a = (ch.pick("turn.yn.a", (f"Yes, they turn {asked}.", "Yes.")) if yes else
                 ch.pick("turn.yn.a", (f"No, they never turn {asked}.", "No.")))  # fmt: skip
        out.append(_qa("direction", q, a, {"turn": asked, "yes_no": "yes" if yes else "no"},
                       direction=t if yes else None))  # fmt: skip
        # multiple choice, for a clip that turns: asked of every clip, "does not turn" (most clips) would be
        # the answer to learn without looking
        options = ch.shuffled("turn.mc", list(_MC_TURNS))
        letter = "ABC"[options.index(t)]
        q = _choice_question("How does the person turn", [_MC_TURNS[o] for o in options])
        out.append(_qa("direction", q, f"{letter}) {_MC_TURNS[t]}.", {"turn": t, "option": letter}, direction=t))

    # pace (mean ground speed over the clip)
    v, dur = _num(f["speed_mps"]), _num(f["duration_s"])
    q = ch.pick("pace.q", ("How fast does the person move?", "At what speed does the person travel?",
                           "How quickly does the person move over the ground?"))  # fmt: skip
    phrases = {
        "still": ("They barely move over the ground.", "The person hardly moves over the ground.",
                  "The person barely moves from where they started."),
        "slow": (f"Slowly: about {v} m/s on average over {dur} s.", f"At a slow pace, about {v} m/s.",
                 f"The person moves slowly, about {v} m/s on average."),
        "walking pace": (f"At a walking pace, about {v} m/s on average.", f"At walking speed: about {v} m/s over "
                         f"{dur} s.", "At a walking pace."),
        "running pace": (f"At a running pace, about {v} m/s on average.", f"At running speed, about {v} m/s.",
                         "At a running pace."),
    }  # fmt: skip
    a = ch.pick("pace.a", phrases[f["pace"]])
    facts = {"pace": f["pace"]} | ({"speed_mps": f["speed_mps"]} if "m/s" in a else {})
    out.append(_qa("direction", q, a, facts | ({"duration_s": f["duration_s"]} if " s." in a else {})))
    return out


def _window_phrase(ch: _Choices, purpose: str, m: dict) -> str:
    return ch.pick(purpose, (f"between {_num(m['from'])} and {_num(m['to'])} seconds",
                             f"from {_num(m['from'])} s to {_num(m['to'])} s", *_WINDOWS[m["window"]]))  # fmt: skip


def _other_part(part: str, ch: _Choices, purpose: str) -> str:
    """A part a model that does not look could confuse with ``part``: the other side, or the other limb."""
    if part == "torso and head":
        return ch.pick(purpose, _PARTS[:4])
    side, limb = part.split()
    other_side = {"left": "right", "right": "left"}[side]
    return ch.pick(purpose, (f"{other_side} {limb}", f"{side} {'leg' if limb == 'arm' else 'arm'}"))


def _body_part_qa(f: dict, kinds: list[dict], ch: _Choices) -> list[dict]:
    out = []
    if f["most_active"]:
        m = ch.pick("part.window", f["most_active"])
        part, span = m["part"], [[m["from"], m["to"]]]
        when = _window_phrase(ch, "part.when", m)
        q = ch.pick("part.q", (f"Which body part moves most {when}?", f"{_cap(when)}, which part of the body is most "
                               "active?", f"What moves the most {when}?"))  # fmt: skip
        a = ch.pick("part.a", (f"The {part}.", f"Mostly the {part}.",
                               f"The {part} {_part_verb(part, 'moves', 'move')} the most."))  # fmt: skip
        facts = {"body_part": part, "times": span} | ({"side": part.split()[0]} if part != "torso and head" else {})
        out.append(_qa("body_part", q, a, facts, body_part=part))

        m = ch.pick("part.yn.window", f["most_active"])
        yes = ch.coin("part.yn")
        asked = m["part"] if yes else _other_part(m["part"], ch, "part.yn.other")
        when = _window_phrase(ch, "part.yn.when", m)
        be = _part_verb(asked, "Is", "Are")
        q = f"{be} the {asked} the most active part of the body {when}?"
        if yes:
            a = ch.pick("part.yn.a", ("Yes.", f"Yes, the {asked} {_part_verb(asked, 'moves', 'move')} the most then."))
        else:
            a = ch.pick("part.yn.a", ("No.", f"No, the {asked} {_part_verb(asked, 'does', 'do')} not move the most "
                                      "then."))  # fmt: skip
        facts = {"body_part": asked, "yes_no": "yes" if yes else "no", "times": [[m["from"], m["to"]]]}
        facts |= {"side": asked.split()[0]} if asked != "torso and head" else {}
        out.append(_qa("body_part", q, a, facts, body_part=asked if yes else None))

        m = ch.pick("part.mc.window", f["most_active"])
        options = ch.shuffled("part.mc", _PARTS)
        letter = "ABCDE"[options.index(m["part"])]
        when = _window_phrase(ch, "part.mc.when", m)
        q = _choice_question(f"Which body part moves most {when}", options)
        facts = {"body_part": m["part"], "option": letter, "times": [[m["from"], m["to"]]]}
        facts |= {"side": m["part"].split()[0]} if m["part"] != "torso and head" else {}
        out.append(_qa("body_part", q, f"{letter}) {m['part']}.", facts, body_part=m["part"]))

    hands = [k for k in kinds if k["kind"].endswith("above head")]
    if len(hands) == 1:  # one hand goes up: which one?
        side = hands[0]["kind"].split()[0]
        q = ch.pick("hand.q", ("Which hand does the person raise above the head?", "Which hand goes up above the "
                               "head?", "Which of the person's hands rises above the head?"))  # fmt: skip
        a = ch.pick("hand.a", (f"The {side} hand.", f"Their {side} hand.", f"It is the {side} hand."))
        out.append(_qa("body_part", q, a, {"body_part": f"{side} arm", "side": side, "times": hands[0]["spans"]}))
    return out


def _counting_qa(f: dict, kinds: list[dict], ch: _Choices) -> list[dict]:
    """One question per countable event that happens (its count), and one time in four one about its
    partner when that does not happen (zero)."""
    happening = [k for k in kinds if k["kind"] in _COUNTABLE]
    if not happening:
        return []  # asking "how many jumps?" of every clip without any would make "zero" the answer to learn
    asked = [(k["kind"], k["n"], k["spans"]) for k in happening]
    absent = [p for p in (_PARTNER[k] for k, _, _ in asked) if p not in {k for k, _, _ in asked}]
    if absent and ch.coin("count.zero", 0.25):
        asked.append((absent[0], 0, []))
    return [_count_question(kind, n, spans, ch) for kind, n, spans in asked]


def _count_question(kind: str, n: int, spans: list, ch: _Choices) -> dict:
    verb = ch.pick(f"count.verb.{kind}", _EVENT_VERBS[kind][:2])
    q = ch.pick(f"count.q.{kind}", (f"How many times does the person {verb.base}?",
                                    f"How often does the person {verb.base} in this clip?",
                                    f"How many {ch.pick(f'count.noun.{kind}', _COUNT_NOUNS[kind])} does the person do?"))  # fmt: skip
    times = _count_phrase(n, ch, f"count.n.{kind}")
    if n:
        a = ch.pick(f"count.a.{kind}", (f"{_cap(_count_phrase(n, ch, f'count.n.{kind}', words=True))}.",
                                        f"They {verb.base} {times}.", f"The person {verb.third} {times}."))  # fmt: skip
    else:
        a = ch.pick(f"count.a.{kind}", (f"Zero times; they never {verb.base}.", f"None: the person never {verb.third}.",
                                        f"Zero times: they do not {verb.base} at all."))  # fmt: skip
    facts = {"event": kind, "count": n} | ({"times": spans} if spans else {})
    return _qa("counting", q, a, facts, count=n)


def _ordered_pairs(kinds: list[dict]) -> list[tuple[dict, dict]]:
    """Consecutive kinds (a, b) where every a ends before any b starts: their order is unambiguous."""
    return [(a, b) for a, b in zip(kinds[:-1], kinds[1:], strict=True) if a["to"] <= b["from"] + 0.05]


def _sequentiality_qa(f: dict, kinds: list[dict], ch: _Choices) -> list[dict]:
    out = []
    pairs = _ordered_pairs(kinds)
    if pairs:
        a, b = ch.pick("seq.pair", pairs)
        va, vb = ch.pick("seq.va", _EVENT_VERBS[a["kind"]]), ch.pick("seq.vb", _EVENT_VERBS[b["kind"]])
        facts = {"order": [a["kind"], b["kind"]], "times": [[a["from"], a["to"]], [b["from"], b["to"]]]}
        first, second = ch.shuffled("seq.mention", [va.gerund, vb.gerund])
        q = ch.pick("seq.q", (f"Which comes first, {first} or {second}?", f"What happens first: {first} or {second}?"))
        ans = ch.pick("seq.a", (f"First they {va.base}, then they {vb.base}.",
                                f"The person {va.third} first and then {vb.third}.",
                                f"{_cap(va.gerund)} comes first, then {vb.gerund}."))  # fmt: skip
        out.append(_qa("sequentiality", q, ans, facts))
        q = ch.pick("seq.after.q", (f"What does the person do after {va.gerund}?",
                                    f"What comes next, after {va.gerund}?"))  # fmt: skip
        ans = ch.pick("seq.after.a", (f"After {va.gerund}, they {vb.base}.", f"They {va.base} first and then "
                                      f"{vb.base}.", f"After {va.gerund}, the person {vb.third}."))  # fmt: skip
        out.append(_qa("sequentiality", q, ans, facts))
    if kinds and (len(kinds) == 1 or pairs and pairs[0][0] is kinds[0]):  # the first event is clear
        k = kinds[0]
        v = ch.pick("seq.first.v", _EVENT_VERBS[k["kind"]])
        q = ch.pick("seq.first.q", ("What does the person do first?", "How does the person's action begin?"))
        ans = ch.pick("seq.first.a", (f"They begin by {v.gerund}.", f"First the person {v.third}.",
                                      f"The person starts by {v.gerund}."))  # fmt: skip
        out.append(_qa("sequentiality", q, ans, {"event": k["kind"], "times": [[k["from"], k["to"]]]}))
    parts = f["most_active"]
    if not pairs and len(parts) >= 2 and parts[0]["part"] != parts[-1]["part"]:
        p1, p3 = parts[0]["part"], parts[-1]["part"]
        q = ch.pick("seq.parts.q", ("How does the movement change over the clip?",
                                    "Which body part leads at the start, and which one at the end?"))  # fmt: skip
        ans = ch.pick("seq.parts.a", (
            f"At first mostly the {p1} {_part_verb(p1, 'moves', 'move')}, and by the end mostly the {p3}.",
            f"The {p1} {_part_verb(p1, 'moves', 'move')} most at the beginning; towards the end the {p3} "
            f"{_part_verb(p3, 'takes', 'take')} over."))  # fmt: skip
        out.append(_qa("sequentiality", q, ans, {"order": [p1, p3], "times": [[parts[0]["from"], parts[0]["to"]],
                                                                            [parts[-1]["from"], parts[-1]["to"]]]}))  # fmt: skip
    return out


def _activity(f: dict, kinds: list[dict]) -> tuple[str, str | None]:
    """(activity key of ``ACTIVITIES``, the event that shows it or None)."""
    names = {k["kind"] for k in kinds}
    for kind in ("crouch", "jump", "run", "walk"):
        if kind in names:
            return kind, kind
    hands = [k for k in names if k.endswith("above head")]
    if len(hands) == 2:
        return "both hands", None
    if hands:
        return "hand", hands[0]
    return "none", None


def _reasoning_qa(f: dict, kinds: list[dict], ch: _Choices) -> list[dict]:
    out = []
    activity, event = _activity(f, kinds)
    q = ch.pick("act.q", ("What is the person most likely doing?", "What activity does this motion most likely "
                          "show?", "What might the person be doing here?"))  # fmt: skip
    doing = ch.pick("act.doing", ACTIVITIES[activity])
    facts: dict = {}
    if event:
        k = next(k for k in kinds if k["kind"] == event)
        v = ch.pick("act.v", _EVENT_VERBS[event])
        if event in _COUNTABLE:
            support = f"they {v.base} {_count_phrase(k['n'], ch, 'act.n')}"
            facts = {"event": event, "count": k["n"]}
        else:
            support = f"they {v.base}"
            facts = {"event": event}
        if f["direction"] == "in place":
            support += " and stay in place"
            facts["direction"] = "in place"
        elif event in ("walk", "run"):
            support += " " + ch.pick("act.w", _DIR_WORDS[f["direction"]])
            facts["direction"] = f["direction"]
        a = ch.pick("act.a", (f"Most likely {doing}: {support}.", f"Probably {doing}, since {support}."))
    elif f["direction"] == "in place":
        a = f"Most likely {doing}: they stay in place."
        facts = {"direction": "in place"}
    else:  # travelling, slower than a walk or too briefly to be one
        a = f"Most likely moving about: they drift {ch.pick('act.w', _DIR_WORDS[f['direction']])}."
        facts = {"direction": f["direction"]}
    out.append(_qa("reasoning", q, a, facts))

    why = [k["kind"] for k in kinds]
    if why:
        kind = ch.pick("why.kind", why)
        v = ch.pick("why.v", _EVENT_VERBS[kind])
        key = "hand" if kind.endswith("above head") else kind
        if key == "hand" and activity == "both hands":
            key = "both hands"
        q = ch.pick("why.q", (f"Why might the person {v.base}?", f"What could be the reason the person {v.third}?"))
        out.append(_qa("reasoning", q, ch.pick("why.a", _PURPOSES[key]), None))  # free text: no fact stated
    return out


def _hallucination_qa(kinds: list[dict], ch: _Choices) -> list[dict]:
    """Yes/no and true/false about an event and its partner (the other hand; a crouch for a jump) where
    exactly one of the two happens: the coin names the one that happens or the one that does not. So each
    question is ~50/50, and so is each event named, as long as partners are about as common (mirror twins
    make the hands so; a walk is far more common than a run, so walks and runs are not asked about)."""
    happening = {k["kind"] for k in kinds}
    pairs = [p for p in _YES_NO_PAIRS if (p[0] in happening) != (p[1] in happening)]
    if not pairs:
        return []
    out = []
    for form in ("yn", "tf"):
        pair = ch.pick(f"hal.{form}.pair", pairs)
        yes = ch.coin(f"hal.{form}")
        kind = next(k for k in pair if (k in happening) == yes)
        v = ch.pick(f"hal.{form}.v", _EVENT_VERBS[kind])
        facts = {"event": kind, "yes_no": "yes" if yes else "no"}
        if form == "yn":
            q = ch.pick("hal.yn.q", (f"Does the person {v.base}?", f"Does the person {v.base} at any point?",
                                     f"Does the person {v.base} in this clip?"))  # fmt: skip
            a = (ch.pick("hal.yn.a", (f"Yes, they {v.base}.", f"Yes, the person {v.third}.", "Yes.")) if yes else
                 ch.pick("hal.yn.a", (f"No, they never {v.base}.", f"No, the person does not {v.base}.", "No.")))  # fmt: skip
        else:
            q = f"True or false: the person {v.third}."
            a = (ch.pick("hal.tf.a", ("True.", f"True: the person {v.third}.")) if yes else
                 ch.pick("hal.tf.a", ("False.", f"False: the person never {v.third}.")))  # fmt: skip
        out.append(_qa("hallucination", q, a, facts))
    return out


def motion_qa(facts: dict, clip_id: str, seed: int = 0) -> list[dict]:
    """Every QA pair the offline annotator can write about one clip (the caller picks some)."""
    ch = _Choices(seed, clip_id)
    kinds = _kinds(facts)
    return (_direction_qa(facts, ch) + _body_part_qa(facts, kinds, ch) + _counting_qa(facts, kinds, ch)
            + _sequentiality_qa(facts, kinds, ch) + _reasoning_qa(facts, kinds, ch) + _hallucination_qa(kinds, ch))  # fmt: skip


# ------------------------------------------------------------------------------------------------ captions


def caption_from_facts(facts: dict, captions: tuple[str, ...], clip_id: str, seed: int = 0) -> str:
    """A detailed caption: the first human caption, then what the measurements add, in time order."""
    f, ch = facts, _Choices(seed, clip_id + "/caption")
    out = []
    if captions and captions[0].strip():
        first = captions[0].strip().rstrip(".")
        out.append(_cap(first) + ".")
    dur = _num(f["duration_s"])
    if f["direction"] == "in place":
        travel = ch.pick("cap.travel", ("stays in place", "stays on the spot"))
    else:
        w, dist = ch.pick("cap.w", _DIR_WORDS[f["direction"]]), _num(f["distance_m"])
        travel = ch.pick("cap.travel", (f"moves {w} about {dist} m", f"travels about {dist} m {w}"))
    turn = "" if f["turn"] == "none" else f", turning {f['turn']} by about {abs(int(f['turn_deg']))} degrees"
    pace = {"still": "", "slow": " at a slow pace", "walking pace": " at a walking pace",
            "running pace": " at a running pace"}[f["pace"]]  # fmt: skip
    out.append(ch.pick("cap.open", (f"Over {dur} seconds, the person {travel}{pace}{turn}.",
                                    f"In {dur} seconds the person {travel}{pace}{turn}.")))  # fmt: skip
    parts = list(dict.fromkeys(m["part"] for m in f["most_active"]))
    if len(parts) == 1:
        out.append(f"The {parts[0]} {_part_verb(parts[0], 'moves', 'move')} the most throughout.")
    elif parts:
        rest = ", then the ".join(parts[1:])
        out.append(f"At first the {parts[0]} {_part_verb(parts[0], 'moves', 'move')} the most, then the {rest}.")
    kinds = _kinds(f)
    hands = [k for k in kinds if k["kind"].endswith("above head")]
    both = len(hands) == 2 and abs(hands[0]["from"] - hands[1]["from"]) < 0.5
    steps = []
    for k in kinds:
        if both and k is hands[1]:
            continue
        if both and k is hands[0]:
            steps.append("raise both hands above the head")
            continue
        v = ch.pick(f"cap.v.{k['kind']}", _EVENT_VERBS[k["kind"]])
        steps.append(v.base + (f" {_count_phrase(k['n'], ch, 'cap.n.' + k['kind'])}" if k["kind"] in _COUNTABLE else ""))
    if len(steps) == 1:
        out.append(f"They {steps[0]}.")
    elif len(steps) == 2:
        out.append(f"First they {steps[0]}, then they {steps[1]}.")
    elif steps:
        out.append(f"First they {steps[0]}, then {', then '.join(steps[1:-1])}, and finally they {steps[-1]}.")
    return " ".join(out)


# ------------------------------------------------------------------------------------------------ video QA

# Actions a human caption names beyond the vocabulary's EVENTS: (the words, the verb, the purpose key).
_CAPTION_ACTIONS = {
    "wave": (("wave", "waves", "waving"), _v("wave", "waves", "waving")),
    "kick": (("kick", "kicks", "kicking"), _v("kick", "kicks", "kicking")),
    "stand": (("stand", "stands", "standing"), _v("stand still", "stands still", "standing still")),
    "both hands": ((), _v("raise both arms", "raises both arms", "raising both arms")),  # found by _BOTH_ARMS
}  # fmt: skip
# Verbs (third person) a caption clause may open with, so "the person <clause>" reads as English.
_CLAUSE_VERBS = frozenset("walks runs jogs jumps hops leaps crouches squats ducks bends raises lifts waves kicks turns "
                          "stands steps sits spins moves".split())  # fmt: skip
# Events a caption reliably names when they happen (a wave raises the hand above the head, but its caption
# says "waves"), and about as common as their partner: only these are asked about in yes/no on a video.
_VIDEO_YES_NO_EVENTS = ("jump", "crouch")
_CLAUSE_SPLIT = re.compile(r",?\s+(?:and\s+)?then\s+|,\s+and\s+|\s+and\s+(?=[a-z]+s\b)|,\s+|\s+while\s+")
_SUBJECT = re.compile(r"^(?:a|the)\s+(?:person|man|woman|figure|human)\s+|^(?:someone|somebody|he|she)\s+")
_WORD = re.compile(r"[a-z]+")
_BOTH_ARMS = re.compile(r"\b(?:raise|raises|raising|lift|lifts|lifting)\b.*\bboth (?:arms|hands)\b")
_COUNT_ADVERB = re.compile(r"\b(once|twice|three times|four times|five times)\b")


def _caption_clauses(caption: str) -> list[dict]:
    """A caption cut into clauses in order, each with what the vocabulary finds in it (events, sides, body
    parts, directions, turns), the other actions it names (wave, kick, stand) and its count adverb."""
    text = " ".join(caption.strip().rstrip(".").lower().split())
    out = []
    for k, clause in enumerate(_CLAUSE_SPLIT.split(text)):
        clause = _SUBJECT.sub("", clause) if k == 0 else clause
        found: dict = {"text": clause, "event": [], "side": [], "body_part": [], "direction": [], "turn": []}
        for fact, value, _, _ in mentions(clause):
            if fact in found and value not in found[fact]:
                found[fact].append(value)
        words = set(_WORD.findall(clause))
        found["actions"] = [a for a, (forms, _) in _CAPTION_ACTIONS.items() if words & set(forms)]
        if _BOTH_ARMS.search(clause):
            found["actions"].append("both hands")
        m = _COUNT_ADVERB.search(clause)
        found["count"] = {"once": 1, "twice": 2, "three times": 3, "four times": 4, "five times": 5}[m[1]] if m else None
        found["keys"] = found["event"] + found["actions"]
        found["sides"] = list(dict.fromkeys(found["side"] + [p.split()[0] for p in found["body_part"] if " " in p]))
        if found["keys"] or found["turn"]:
            out.append(found)
    return out


def _verb_of(key: str) -> _Verb:
    return _EVENT_VERBS[key][0] if key in _EVENT_VERBS else _CAPTION_ACTIONS[key][1]


def _stated(text: str) -> dict:
    """The facts a caption-derived answer states (``parse_facts``), each kept only where it is one value."""
    found, out = parse_facts(text), {}
    for key in ("direction", "turn", "body_part", "pace", "side"):
        if len(found.get(key, ())) == 1:
            out[key] = found[key][0]
    events = found.get("event", [])
    if len(events) >= 2:
        out["order"] = events
    elif events:
        out["event"] = events[0]
    if "count" in found:  # of the one action the clause counts
        out["count"] = found["count"]
    return out


def video_qa(captions: tuple[str, ...], clip_id: str, seed: int = 0) -> list[dict]:
    """QA about a video from its human captions (no vision model offline): what the person does, why they
    might do it, what comes after what, which hand or leg, which way, how often, and a balanced yes/no."""
    ch = _Choices(seed, clip_id + "|" + "|".join(captions))
    caption = " ".join((captions[0] if captions else "").split()) or "A person moves."
    caption = _cap(caption) + ("" if caption[-1] in ".!?" else ".")
    what = ch.pick("v.what.q", ("What does the person do in the video?", "What is happening in the video?"))
    out = [_qa("reasoning", what, caption, None)]  # the caption itself: free text
    clauses = _caption_clauses(caption)
    if not clauses:
        return out

    # why / what for, from an action the caption names
    c, key = ch.pick("v.why", [(c, key) for c in clauses for key in c["keys"]] or [(None, None)])
    if key:
        purpose = "hand" if key.endswith("above head") else key
        v = _verb_of(key)
        q = ch.pick("v.why.q", (f"Why might the person {v.base} in the video?",
                                f"For what reason might the person {v.base} here?"))  # fmt: skip
        out.append(_qa("reasoning", q, ch.pick("v.why.a", _PURPOSES[purpose]), None))

    # order: what comes after the first action (the next clause, said as the caption says it)
    if len(clauses) >= 2 and clauses[0]["keys"]:
        a_key, b = clauses[0]["keys"][0], clauses[1]
        if a_key not in b["keys"] and b["text"].split()[0] in _CLAUSE_VERBS:
            va = _verb_of(a_key)
            q = ch.pick("v.seq.q", (f"What does the person do after {va.gerund}?",
                                    f"In the video, what comes after {va.gerund}?"))  # fmt: skip
            ans = f"After {va.gerund}, the person {b['text']}."
            out.append(_qa("sequentiality", q, ans, _stated(ans) or None))  # nothing in the vocabulary: free text

    # which hand or leg, which way, how often
    for c in clauses:
        if "wave" in c["actions"] and len(c["sides"]) == 1:
            side = c["sides"][0]
            q = ch.pick("v.wave.q", ("Which hand does the person wave with?", "With which hand does the person wave?"))
            out.append(_qa("body_part", q, ch.pick("v.wave.a", (f"The {side} hand.", f"With the {side} hand.")),
                           {"body_part": f"{side} arm", "side": side}))  # fmt: skip
        if "kick" in c["actions"] and len(c["body_part"]) == 1 and c["body_part"][0].endswith("leg"):
            side = c["sides"][0]
            q = ch.pick("v.kick.q", ("Which leg does the person kick with?", "With which leg does the person kick?"))
            out.append(_qa("body_part", q, ch.pick("v.kick.a", (f"The {side} leg.", f"With the {side} leg.")),
                           {"body_part": f"{side} leg", "side": side}))  # fmt: skip
        travel = [e for e in c["event"] if e in ("walk", "run")]
        if len(c["direction"]) == 1 and c["direction"][0] in _DIR_WORDS and len(travel) == 1:
            d, v = c["direction"][0], _EVENT_VERBS[travel[0]][0]
            w = ch.pick("v.dir.w", _DIR_WORDS[d])
            a = ch.pick("v.dir.a", (f"{_cap(w)}.", f"The person {v.third} {w}."))
            out.append(_qa("direction", f"In which direction does the person {v.base}?", a,
                           {"direction": d} | ({"event": travel[0]} if v.third in a else {}), direction=d))  # fmt: skip
        if len(c["turn"]) == 1 and c["turn"][0] != "none":
            t = c["turn"][0]
            q = ch.pick("v.turn.q", ("Which way does the person turn in the video?", "In which direction does the "
                                     "person turn?"))  # fmt: skip
            out.append(_qa("direction", q, ch.pick("v.turn.a", (f"They turn {t}.", f"The person turns {t}.")),
                           {"turn": t}, direction=t))  # fmt: skip
        countable = [e for e in c["event"] if e in _COUNTABLE]
        if c["count"] and len(countable) == 1:
            e, n, v = countable[0], c["count"], _EVENT_VERBS[countable[0]][0]
            q = ch.pick("v.count.q", (f"How many times does the person {v.base}?", f"How often does the person "
                                      f"{v.base} in the video?"))  # fmt: skip
            times = _count_phrase(n, ch, "v.count.n")
            a = ch.pick("v.count.a", (f"{_cap(_count_phrase(n, ch, 'v.count.n', words=True))}.",
                                      f"The person {v.third} {times}."))  # fmt: skip
            out.append(_qa("counting", q, a, {"event": e, "count": n}, count=n))

    # balanced yes/no: an event the caption names, or the partner of one (a run for a walk) that it does not
    named = list(dict.fromkeys(e for c in clauses for e in c["event"] if e in _VIDEO_YES_NO_EVENTS))
    absent = [k for k in _VIDEO_YES_NO_EVENTS if k not in named]
    if named and absent:
        yes = ch.coin("v.hal")
        partners = [_PARTNER[k] for k in named if _PARTNER[k] in absent]
        kind = ch.pick("v.hal.kind", named if yes else partners or absent)
        v = _EVENT_VERBS[kind][0]
        q = ch.pick("v.hal.q", (f"Does the person {v.base} in the video?", f"Is the person seen {v.gerund} in the "
                                "video?"))  # fmt: skip
        a = (ch.pick("v.hal.a", (f"Yes, the person {v.third}.", "Yes.")) if yes else
             ch.pick("v.hal.a", (f"No, the person never {v.third} in the video.", "No.")))  # fmt: skip
        out.append(_qa("hallucination", q, a, {"event": kind, "yes_no": "yes" if yes else "no"}))
    return out
