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

from stages.offline_video_qa import caption_from_facts, video_qa
from stages.offline_words import (
    _COUNT_NOUNS,
    _COUNTABLE,
    _DIR_WORDS,
    _EVENT_VERBS,
    _MC_DIRECTIONS,
    _MC_TURNS,
    _PARTNER,
    _PARTS,
    _PURPOSES,
    _WINDOWS,
    _YES_NO_PAIRS,
    ACTIVITIES,
    _cap,
    _choice_question,
    _Choices,
    _count_phrase,
    _kinds,
    _num,
    _part_verb,
    _qa,
    _subject,
    _v,
)

__all__ = ["ACTIVITIES", "caption_from_facts", "motion_qa", "video_qa"]

def _travel_qa(f: dict, ch: _Choices) -> list[dict]:
    """Where the clip goes: open, yes/no (stays in place) and multiple choice."""
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
    return out


def _turn_qa(f: dict, ch: _Choices) -> list[dict]:
    """Which way a turning clip turns: open, a balanced yes/no or true/false, and multiple choice."""
    t, deg = f["turn"], abs(int(f["turn_deg"]))
    out: list[dict] = []
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
    return out


def _pace_qa(f: dict, ch: _Choices) -> list[dict]:
    """The pace (mean ground speed over the clip)."""
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
    return [_qa("direction", q, a, facts | ({"duration_s": f["duration_s"]} if " s." in a else {}))]


def _direction_qa(f: dict, ch: _Choices) -> list[dict]:
    return _travel_qa(f, ch) + _turn_qa(f, ch) + _pace_qa(f, ch)


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
