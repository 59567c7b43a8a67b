"""The offline annotator's detailed captions (the first human caption, then what the measurements add, in
time order) and its video QA, reasoned from a video's human captions (why, what next, which side, which way,
how often, balanced yes/no). Its guarantees are those of ``stages.offline_qa``."""

from __future__ import annotations

import re

from schemas.vocabulary import mentions, parse_facts
from stages import offline_words as words

__all__ = ["caption_from_facts", "video_qa"]


# ------------------------------------------------------------------------------------------------ captions


def caption_from_facts(facts: dict, captions: tuple[str, ...], clip_id: str, seed: int = 0) -> str:
    """A detailed caption: the first human caption, then what the measurements add, in time order."""
    f, ch = facts, words._Choices(seed, clip_id + "/caption")
    out = []
    if captions and captions[0].strip():
        first = captions[0].strip().rstrip(".")
        out.append(words._cap(first) + ".")
    dur = words._num(f["duration_s"])
    if f["direction"] == "in place":
        travel = ch.pick("cap.travel", ("stays in place", "stays on the spot"))
    else:
        w, dist = ch.pick("cap.w", words._DIR_WORDS[f["direction"]]), words._num(f["distance_m"])
        travel = ch.pick("cap.travel", (f"moves {w} about {dist} m", f"travels about {dist} m {w}"))
    turn = "" if f["turn"] == "none" else f", turning {f['turn']} by about {abs(int(f['turn_deg']))} degrees"
    pace = {"still": "", "slow": " at a slow pace", "walking pace": " at a walking pace",
            "running pace": " at a running pace"}[f["pace"]]  # fmt: skip
    out.append(ch.pick("cap.open", (f"Over {dur} seconds, the person {travel}{pace}{turn}.",
                                    f"In {dur} seconds the person {travel}{pace}{turn}.")))  # fmt: skip
    parts = list(dict.fromkeys(m["part"] for m in f["most_active"]))
    if len(parts) == 1:
        out.append(f"The {parts[0]} {words._part_verb(parts[0], 'moves', 'move')} the most throughout.")
    elif parts:
        rest = ", then the ".join(parts[1:])
        out.append(f"At first the {parts[0]} {words._part_verb(parts[0], 'moves', 'move')} the most, then the {rest}.")
    kinds = words._kinds(f)
    hands = [k for k in kinds if k["kind"].endswith("above head")]
    both = len(hands) == 2 and abs(hands[0]["from"] - hands[1]["from"]) < 0.5
    steps = []
    for k in kinds:
        if both and k is hands[1]:
            continue
        if both and k is hands[0]:
            steps.append("raise both hands above the head")
            continue
        v = ch.pick(f"cap.v.{k['kind']}", words._EVENT_VERBS[k["kind"]])
        steps.append(v.base + (f" {words._count_phrase(k['n'], ch, 'cap.n.' + k['kind'])}" if k["kind"] in words._COUNTABLE else ""))
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
    "wave": (("wave", "waves", "waving"), words._v("wave", "waves", "waving")),
    "kick": (("kick", "kicks", "kicking"), words._v("kick", "kicks", "kicking")),
    "stand": (("stand", "stands", "standing"), words._v("stand still", "stands still", "standing still")),
    "both hands": ((), words._v("raise both arms", "raises both arms", "raising both arms")),  # found by _BOTH_ARMS
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


def _verb_of(key: str) -> words._Verb:
    return words._EVENT_VERBS[key][0] if key in words._EVENT_VERBS else _CAPTION_ACTIONS[key][1]


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
    ch = words._Choices(seed, clip_id + "|" + "|".join(captions))
    caption = " ".join((captions[0] if captions else "").split()) or "A person moves."
    caption = words._cap(caption) + ("" if caption[-1] in ".!?" else ".")
    what = ch.pick("v.what.q", ("What does the person do in the video?", "What is happening in the video?"))
    out = [words._qa("reasoning", what, caption, None)]  # the caption itself: free text
    clauses = _caption_clauses(caption)
    if not clauses:
        return out
    out += _why_and_next_qa(clauses, ch)
    for c in clauses:
        out += _clause_qa(c, ch)
    return out + _video_yes_no(clauses, ch)


def _why_and_next_qa(clauses: list[dict], ch: words._Choices) -> list[dict]:
    """Why / what for, from an action the caption names; and what comes after the first action."""
    out = []
    c, key = ch.pick("v.why", [(c, key) for c in clauses for key in c["keys"]] or [(None, None)])
    if key:
        purpose = "hand" if key.endswith("above head") else key
        v = _verb_of(key)
        q = ch.pick("v.why.q", (f"Why might the person {v.base} in the video?",
                                f"For what reason might the person {v.base} here?"))  # fmt: skip
        out.append(words._qa("reasoning", q, ch.pick("v.why.a", words._PURPOSES[purpose]), None))

    # order: what comes after the first action (the next clause, said as the caption says it)
    if len(clauses) >= 2 and clauses[0]["keys"]:
        a_key, b = clauses[0]["keys"][0], clauses[1]
        if a_key not in b["keys"] and b["text"].split()[0] in _CLAUSE_VERBS:
            va = _verb_of(a_key)
            q = ch.pick("v.seq.q", (f"What does the person do after {va.gerund}?",
                                    f"In the video, what comes after {va.gerund}?"))  # fmt: skip
            ans = f"After {va.gerund}, the person {b['text']}."
            out.append(words._qa("sequentiality", q, ans, _stated(ans) or None))  # nothing in the vocabulary: free text

    return out


def _clause_qa(c: dict, ch: words._Choices) -> list[dict]:
    """Which hand or leg, which way, how often: what one caption clause states."""
    out = []
    if "wave" in c["actions"] and len(c["sides"]) == 1:
        side = c["sides"][0]
        q = ch.pick("v.wave.q", ("Which hand does the person wave with?", "With which hand does the person wave?"))
        out.append(words._qa("body_part", q, ch.pick("v.wave.a", (f"The {side} hand.", f"With the {side} hand.")),
                       {"body_part": f"{side} arm", "side": side}))  # fmt: skip
    if "kick" in c["actions"] and len(c["body_part"]) == 1 and c["body_part"][0].endswith("leg"):
        side = c["sides"][0]
        q = ch.pick("v.kick.q", ("Which leg does the person kick with?", "With which leg does the person kick?"))
        out.append(words._qa("body_part", q, ch.pick("v.kick.a", (f"The {side} leg.", f"With the {side} leg.")),
                       {"body_part": f"{side} leg", "side": side}))  # fmt: skip
    travel = [e for e in c["event"] if e in ("walk", "run")]
    if len(c["direction"]) == 1 and c["direction"][0] in words._DIR_WORDS and len(travel) == 1:
        d, v = c["direction"][0], words._EVENT_VERBS[travel[0]][0]
        w = ch.pick("v.dir.w", words._DIR_WORDS[d])
        a = ch.pick("v.dir.a", (f"{words._cap(w)}.", f"The person {v.third} {w}."))
        out.append(words._qa("direction", f"In which direction does the person {v.base}?", a,
                       {"direction": d} | ({"event": travel[0]} if v.third in a else {}), direction=d))  # fmt: skip
    if len(c["turn"]) == 1 and c["turn"][0] != "none":
        t = c["turn"][0]
        q = ch.pick("v.turn.q", ("Which way does the person turn in the video?", "In which direction does the "
                                 "person turn?"))  # fmt: skip
        out.append(words._qa("direction", q, ch.pick("v.turn.a", (f"They turn {t}.", f"The person turns {t}.")),
                       {"turn": t}, direction=t))  # fmt: skip
    countable = [e for e in c["event"] if e in words._COUNTABLE]
    if c["count"] and len(countable) == 1:
        e, n, v = countable[0], c["count"], words._EVENT_VERBS[countable[0]][0]
        q = ch.pick("v.count.q", (f"How many times does the person {v.base}?", f"How often does the person "
                                  f"{v.base} in the video?"))  # fmt: skip
        times = words._count_phrase(n, ch, "v.count.n")
        a = ch.pick("v.count.a", (f"{words._cap(words._count_phrase(n, ch, 'v.count.n', words=True))}.",
                                  f"The person {v.third} {times}."))  # fmt: skip
        out.append(words._qa("counting", q, a, {"event": e, "count": n}, count=n))
    return out


def _video_yes_no(clauses: list[dict], ch: words._Choices) -> list[dict]:
    # balanced yes/no: an event the caption names, or the partner of one (a run for a walk) that it does not
    named = list(dict.fromkeys(e for c in clauses for e in c["event"] if e in _VIDEO_YES_NO_EVENTS))
    absent = [k for k in _VIDEO_YES_NO_EVENTS if k not in named]
    out = []
    if named and absent:
        yes = ch.coin("v.hal")
        partners = [words._PARTNER[k] for k in named if words._PARTNER[k] in absent]
        kind = ch.pick("v.hal.kind", named if yes else partners or absent)
        v = words._EVENT_VERBS[kind][0]
        q = ch.pick("v.hal.q", (f"Does the person {v.base} in the video?", f"Is the person seen {v.gerund} in the "
                                "video?"))  # fmt: skip
        a = (ch.pick("v.hal.a", (f"Yes, the person {v.third}.", "Yes.")) if yes else
             ch.pick("v.hal.a", (f"No, the person never {v.third} in the video.", "No.")))  # fmt: skip
        out.append(words._qa("hallucination", q, a, {"event": kind, "yes_no": "yes" if yes else "no"}))
    return out
