"""The offline annotator's English, over thousands of generated answers: grammar rules written out as
regexes (no "at still" fragments, no "leg/arm", "1 times", subject-verb agreement for every phrase it builds)
and agreement with the vocabulary (each answer states its ``facts`` and nothing that contradicts them)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.sample_data import SUBJECTS, _random_segments, caption_for
from schemas.vocabulary import parse_facts, question_template
from stages.annotate import CATEGORIES, ClipRequest, offline_caption, offline_video_answer, verify_qa
from stages.kinematics import mirror_caption
from stages.offline_qa import motion_qa, video_qa

PARTS = ("left arm", "right arm", "left leg", "right leg", "torso and head")
KINDS = ("walk", "run", "jump", "crouch", "left hand above head", "right hand above head")


def random_facts(rng: np.random.Generator) -> dict:
    """Facts in ``motion_facts``' shape covering every branch: each direction, turn and pace, 0-6 jumps and
    crouches, hands, walks and runs in any order (overlapping or not), repeated or changing body parts."""
    duration = float(np.round(rng.uniform(1.5, 9.8), 2))
    direction = str(rng.choice(["forward", "backward", "left", "right", "in place"]))
    turn = str(rng.choice(["none", "left", "right"]))
    deg = 0 if turn == "none" else int(rng.integers(30, 200)) * (1 if turn == "left" else -1)
    events = []
    for kind in KINDS:
        n = int(rng.choice([0, 0, 1, 2, 3, 4, 6])) if kind in ("jump", "crouch") else int(rng.random() < 0.35)
        for _ in range(n):
            a = float(np.round(rng.uniform(0, duration - 0.5), 2))
            events.append({"event": kind, "from": a, "to": float(np.round(min(duration, a + rng.uniform(0.3, 2.5)), 2))})
    events.sort(key=lambda e: (e["from"], e["event"]))
    thirds = np.linspace(0, duration, 4).round(2)
    same = rng.random() < 0.3
    first = str(rng.choice(PARTS))
    most_active = [{"window": w, "from": float(thirds[i]), "to": float(thirds[i + 1]),
                    "part": first if same else str(rng.choice(PARTS))}
                   for i, w in enumerate(("beginning", "middle", "end"))]  # fmt: skip
    speed = float(np.round(rng.uniform(0, 3.5), 2))
    return {
        "duration_s": duration,
        "distance_m": float(np.round(rng.uniform(0.0, 0.3) if direction == "in place" else rng.uniform(0.3, 9), 2)),
        "direction": direction, "turn_deg": deg, "turn": turn, "speed_mps": speed,
        "pace": "still" if speed < 0.15 else "slow" if speed < 1.0 else "walking pace" if speed < 2.0 else "running pace",
        "jumps": sum(e["event"] == "jump" for e in events), "crouches": sum(e["event"] == "crouch" for e in events),
        "hands_above_head": sorted({e["event"].split()[0] for e in events if e["event"].endswith("above head")}),
        "most_active": most_active, "events": events,
    }  # fmt: skip


def random_captions(rng: np.random.Generator) -> tuple[str, ...]:
    segs = _random_segments(rng)
    caps = tuple(caption_for(segs, str(s)) for s in rng.choice(SUBJECTS, size=2, replace=False))
    return tuple(map(mirror_caption, caps)) if rng.random() < 0.5 else caps


@pytest.fixture(scope="module")
def generated():
    """(kind, question, answer, facts, clip facts) of motion QA, video QA and detailed captions."""
    rng = np.random.default_rng(17)
    out = []
    for i in range(700):
        f = random_facts(rng)
        for qa in motion_qa(f, f"{i:06d}", seed=i % 3):
            out.append(("motion", qa["question"], qa["answer"], qa, f))
        out.append(("caption", None, offline_caption(ClipRequest(f"{i:06d}", "train", "", f, captions=("a person "
                                                                 "walks.",)), seed=1)["caption"], None, f))  # fmt: skip
    for i in range(700):
        caps = random_captions(rng)
        for qa in video_qa(caps, f"{i:06d}"):
            out.append(("video", qa["question"], qa["answer"], qa, caps))
    return out


# Rules every answer, question and caption keeps (each a regex that must NOT match).
BAD = {
    "pace used as a place": r"\b[Aa]t (still|slow|walking|running)\b(?! pace| speed)",
    "slash between parts": r"\b(leg/arm|arm/leg|left/right)\b",
    "double space": r"  ",
    "space before punctuation": r" [,.;:?!]",
    "doubled punctuation": r"[,.;:?!]{2}",
    "repeated word": r"\b(\w+) \1\b",
    "'1 times'": r"\b(1|one) times\b",
    "plural count, singular noun": r"\b([2-9]|\d\d+|two|three|four|five|six|seven|eight|nine|ten|zero) time\b",
    "'a' before a vowel": r"\ba [aeiou]",
    "'Then comes' (the old broken answer)": r"\b[Tt]hen comes\b",
    "paraphrase request as reasoning": r"in other words",
    "person + base verb": r"(?<![Dd]oes )(?<![Dd]id )(?<![Mm]ight )(?<![Cc]ould )(?<![Ww]ould )\b[Tt]he person (walk|run|jog|jump|"
                          r"crouch|squat|raise|lift|turn|move|travel|stay|stand|start|begin|wave|kick|barely move|"
                          r"hardly move|are|were|have)\b",  # fmt: skip
    "person + 'do' (not after does)": r"(?<![Dd]oes )\b[Tt]he person do\b",
    "person never + base verb": r"\b[Tt]he person never (walk|run|jog|jump|crouch|squat|raise|lift|turn|move|travel)\b",
    "they + third-person verb": r"\b[Tt]hey (?:never |then |first )?(walks|runs|jogs|jumps|crouches|squats|raises|"
                                r"lifts|turns|moves|travels|stays|stands|starts|begins|waves|kicks|drifts|is|was|"
                                r"does|has)\b",  # fmt: skip
    "do/does not + third-person verb": r"\b(?:does|do|did) not (walks|runs|jogs|jumps|crouches|squats|raises|lifts|"
                                       r"turns|moves|travels|stays)\b",  # fmt: skip
    "auxiliary + person + third-person verb": r"\b(?:[Dd]oes|[Mm]ight|[Cc]ould) the person (walks|runs|jumps|"
                                              r"crouches|squats|raises|lifts|turns|moves|travels|stays)\b",  # fmt: skip
    "'torso and head' + singular verb": r"\btorso and head (moves|is|does|takes|rises)\b",
    "'Is the torso and head'": r"\bIs the torso and head\b",
    "one part + plural verb": r"\b(?:left|right) (?:arm|leg|hand|foot) (move|are|do|take)\b",
    "'Are' + one part": r"\bAre the (?:left|right) (?:arm|leg)\b",
}


def test_enough_answers_are_generated(generated):
    answers = [g for g in generated if g[0] != "caption"]
    assert len(answers) >= 5000
    assert {g[3]["category"] for g in answers} == set(CATEGORIES)
    assert len({question_template(g[1]) for g in answers}) >= 60  # several phrasings per fact


@pytest.mark.parametrize("rule", sorted(BAD))
def test_grammar_rule(generated, rule):
    pattern = re.compile(BAD[rule])
    texts = [t for g in generated for t in (g[1], g[2]) if t]
    offending = [t for t in texts if pattern.search(t)]
    assert not offending, f"{rule}: {len(offending)} texts, e.g. {offending[:3]}"


def test_sentences_start_with_a_capital_and_end_with_punctuation(generated):
    for _, question, answer, _, _ in generated:
        for text in (question, answer):
            if text is None:
                continue
            assert re.match(r"[A-Z]", text), text
            assert text[-1] in ".?!", text
        if question:
            assert question.endswith("?") or question.startswith("True or false: ") and question.endswith("."), question


def _allowed(facts: dict, key: str) -> set:
    """The values of fact ``key`` an answer with ``facts`` may mention."""
    allowed = {facts[key]} if key in facts else set()
    allowed |= set(facts.get("order", ()))
    if key == "side":
        named = [facts.get("body_part"), facts.get("event"), *facts.get("order", ())]
        allowed |= {v.split()[0] for v in named if v and v.split()[0] in ("left", "right")}
    return allowed


def test_answers_state_their_facts_in_the_vocabulary_and_nothing_else(generated):
    """Parsing each answer with the vocabulary gives back its facts: no value of a fact other than its own
    (never "right" meaning "correct", no other direction or limb), yes/no only where the question is one,
    counts only where it counts, the options' letter, events in time order. Free-text answers (facts null:
    purposes, a video's own caption) state none."""
    checked = 0
    for kind, _, answer, qa, _ in generated:
        if kind == "caption":
            continue
        facts, parsed = qa["facts"], parse_facts(answer)
        if facts is None:
            if kind == "motion":
                assert not set(parsed) - {"side"}, (answer, parsed)
            continue
        for key in ("direction", "turn", "pace", "body_part", "event", "side"):
            assert set(parsed.get(key, ())) <= _allowed(facts, key), (key, answer, facts, parsed)
        assert parsed.get("yes_no") == facts.get("yes_no"), (answer, facts)
        assert parsed.get("option") == facts.get("option"), (answer, facts)
        assert parsed.get("count") == facts.get("count") or "count" not in parsed and facts.get("yes_no"), (answer, facts)
        order = facts.get("order")
        if order and order[0] in PARTS:
            assert parsed.get("body_part") == order, (answer, facts)
        elif order:
            assert parsed.get("event") == order, (answer, facts)
        checked += 1
    assert checked >= 5000


def test_motion_answers_pass_the_kinematic_check(generated):
    for kind, _, _, qa, f in generated:
        if kind == "motion":
            assert verify_qa(qa, f) is None, qa


def test_a_video_without_known_actions_still_gets_its_caption_as_an_answer():
    payload = offline_video_answer(ClipRequest("v1", "test", "", {}, captions=("a figure does something odd",)), 6)
    (qa,) = payload["qa"]
    assert qa["answer"] == "A figure does something odd." and qa["facts"] is None
