"""The content-aware offline judge on hand-written pairs: contradictions a real model would produce (each must
be judged wrong) and paraphrases (each must be judged right), written by hand — not generated from the
vocabulary — over every fact kind; the traps of words that mean two things; the generated per-run
calibration set; and the reference's ``facts`` column."""

from __future__ import annotations

import json

import numpy as np

from model.calibration import calibration_report, calibration_set, contradictions, paraphrase
from model.facts import MAX_CHARS, TOLERANCE, compare, facts_from_record, parse_answer, parse_question
from model.judge import Judgement, OfflineJudge

DIR = "In which direction does the person travel?"
TURN = "Does the person turn, and which way?"
PART = "Which body part moves most between 1.2 and 2.4 seconds?"
COUNT_JUMP = "How many times does the person jump?"
COUNT_CROUCH = "How many times does the person crouch?"
AFTER_CROUCH = "What does the person do after the crouch?"
AFTER_JUMP = "What does the person do after the jump?"
FIRST = "Which comes first, the jump or the crouch?"
MC = "Which way does the person travel? A) forward B) backward C) left D) right E) stays in place"
PACE = "How fast does the person move?"
DOING = "What is the person most likely doing?"
TRAVEL_FAR = "How far does the person travel?"
REASON_TRAVEL = ("Most likely traveling: they move forward about 7.77 m at walking pace and turn right by about "
                 "90 degrees.")  # fmt: skip
REASON_IN_PLACE = "Most likely exercising or gesturing in place: they stay in place and do not turn much."

# (question, reference, prediction): each prediction contradicts its reference or leaves out what is asked.
CONTRADICTIONS = [
    # direction of travel
    (DIR, "The person moves left about 2 m.", "They walk forward."),
    (DIR, "They move forward about 3.5 m.", "The person heads to the left."),
    (DIR, "They move forward about 3.5 m.", "Backwards, roughly 3.5 metres."),
    (DIR, "They stay in place.", "They walk forward a few steps."),
    (DIR, "They stay in place.", "The person is traveling to the right."),
    (DIR, "They move backward about 1.2 m.", "They step forward about a meter."),
    (DIR, "They move right about 2 m.", "Leftward."),
    (DIR, "They move to the left.", "They go to the right."),
    (DIR, "They move forward about 3.53 m.", "They stay on the spot."),
    (DIR, "They move backward about 2.9 m.", "They move forward about 2.9 m."),
    (DIR, "They move forward about 4 m.", "They move forward about 9 m."),
    (DIR, "They move forward about 2 m.", "They step back about 2 m."),
    (DIR, "They move forward about 2 m.", "The person doesn't go anywhere."),
    (DIR, "They move left about 1.5 m.", "They drift a little."),
    # turning
    (TURN, "They turn right by about 90 degrees.", "They turn to the left by about 90 degrees."),
    (TURN, "They turn right by about 90 degrees.", "No, they keep facing the same direction."),
    (TURN, "They do not turn much.", "Yes, they turn around."),
    (TURN, "They turn left by about 45 degrees.", "They rotate clockwise."),
    (TURN, "They turn left by about 90 degrees.", "They turn left by about 180 degrees."),
    (TURN, "They turn left by about 90 degrees.", "They make a quarter turn to the right."),
    # body part and side
    (PART, "The left leg.", "The left arm."),
    (PART, "The left arm.", "Their right arm."),
    (PART, "The right leg.", "The left foot."),
    (PART, "The torso and head.", "The right hand."),
    (PART, "The left arm.", "Mostly the legs."),
    ("Which arm moves more?", "The left arm.", "The right one."),
    (PART, "The right leg.", "The head."),
    (PART, "The left arm.", "Their back."),
    (PART, "The right arm.", "It's the right knee that moves the most."),
    ("Which hand does the person raise above the head?", "The left hand.", "The right hand."),
    # events, what comes next, and order
    (AFTER_CROUCH, "Then comes a jump, from 6.55 to 7.5 s.", "They crouch down again."),
    (AFTER_JUMP, "They crouch.", "They raise the right hand above the head."),
    ("What does the person do after the crouch?", "Then they walk.", "They start running."),
    (AFTER_JUMP, "They raise the left hand above the head.", "They lift their right arm."),
    (AFTER_CROUCH, "They jump.", "They squat."),
    (FIRST, "First they jump, then they crouch.", "First they crouch, then they jump."),
    (FIRST, "First they jump, then they crouch.", "The crouch comes first."),
    (FIRST, "First they jump, then they crouch.", "They squat before jumping."),
    (FIRST, "First they crouch, then they jump.", "They jump, and after that they crouch."),
    ("In what order do the events happen?", "First the left hand goes above the head, then the right hand.",
     "The right hand goes up first."),
    ("What does the person do first?", "First they walk, then they run.", "First they run, then they walk."),
    ("Does the person jump before crouching?", "Yes, the jump comes first.", "No."),
    # counts
    (COUNT_JUMP, "They jump two times.", "Three times."),
    (COUNT_JUMP, "They jump two times.", "Once."),
    (COUNT_JUMP, "They do not jump.", "They jump once."),
    (COUNT_JUMP, "They jump once.", "They don't jump at all."),
    (COUNT_JUMP, "3 times.", "Twice."),
    (COUNT_CROUCH, "They crouch once.", "The person squats three times."),
    (COUNT_JUMP, "They jump two times.", "They jump several times."),
    (COUNT_JUMP, "They jump once.", "Several times."),
    (COUNT_JUMP, "They jump two times.", "They jump."),
    (COUNT_CROUCH, "They never crouch.", "Two."),
    # yes / no
    ("Does the person do a jump?", "No, that does not happen in this clip.", "Yes, they jump."),
    ("True or false: the person does a crouch.", "False.", "True."),
    ("Is the person's left hand raised above the head?", "Yes, the left hand goes above the head.",
     "No, it stays down."),
    ("Does the person jump?", "Yes, they jump twice.", "The person doesn't jump."),
    ("Does the person crouch?", "No.", "Yeah, they squat down."),
    ("True or false: the person raises the right hand above the head.", "True.", "That's false."),
    ("Does the person turn left?", "No, they turn right.", "Yes, they turn left."),
    ("Does the person jump?", "Yes, they jump twice.", "Yes, once."),
    # multiple choice
    (MC, "E) stays in place", "A"),
    (MC, "C) left", "D) right"),
    (MC, "A) forward", "The answer is B."),
    (MC, "B) backward", "They move forward."),
    (MC, "E) stays in place", "They move to the left."),
    # pace and speed
    (PACE, "At a slow pace, about 0.4 m/s over 6 s.", "At running pace."),
    (PACE, "At walking pace, about 1.3 m/s.", "They barely move."),
    (PACE, "At running pace, about 3 m/s.", "About 0.5 m/s."),
    (PACE, "At a slow pace, about 0.39 m/s.", "At walking speed, about 1.4 m/s."),
    # reasoning: travelling vs in place, and the facts inside
    (DOING, REASON_IN_PLACE, "Most likely traveling forward at walking pace."),
    (DOING, REASON_TRAVEL, "They are exercising in place."),
    (DOING, "Most likely traveling: they move backward about 3 m at a slow pace and do not turn much.",
     "Walking forward slowly."),
    (DOING, REASON_TRAVEL, "They walk forward and turn left."),
    (DOING, REASON_IN_PLACE, "Most likely traveling."),
    # the bench's own phrasings (schemas/vocabulary.py's annotator)
    ("Which way does the person travel?", "The person travels to the left about 5.8 m.", "They walk backwards."),
    (PACE, "The person barely moves from where they started.", "At a walking pace."),
    ("What does the person do first?", "They begin by crouching down.", "They begin by jumping."),
    ("What comes next, after squatting?", "Then they jump up.", "Then they walk away."),
    ("What happens first: walking or jumping?", "Walking comes first, then jumping.", "Jumping."),
    ("How does the movement change over the clip?",
     "The right arm moves most at the beginning; towards the end the right leg takes over.",
     "The right leg moves most at the beginning; towards the end the right arm takes over."),
    ("Which hand goes up above the head?", "The left hand.", "The right one."),
    ("Does the person stay in place?", "Yes, they stay in place.", "No, they walk forward."),
    ("Is the right arm the most active part of the body in the last third of the clip?",
     "Yes, the right arm moves the most then.", "Yes, the left arm moves the most then."),
    ("How often does the person jump in this clip?", "Zero times; they never jump.", "A couple of times."),
    ("How does the person turn: A) turns left, B) turns right, or C) does not turn?", "A) turns left.",
     "They do not turn."),
    ("Does the person turn to the left or to the right?", "They turn right, by about 88 degrees.", "To the left."),
    ("Where does the person go during the clip?", "Nowhere: they stay in one place.", "They wander around the room."),
    (PART, "The left leg.", "The left leg and the right arm."),
    # numbers out of tolerance
    (TRAVEL_FAR, "About 3.5 m forward.", "About 8 metres forward."),
    ("How long does the crouch last?", "About 2 s, from 1.5 to 3.5 s.", "About 6 seconds."),
    (TRAVEL_FAR, "About 3.5 m forward.", "Forward."),
]  # fmt: skip

# (question, reference, prediction): each prediction says the same as its reference in other words.
PARAPHRASES = [
    (DIR, "The person moves left about 2 m.", "They head to the left."),
    (DIR, "They move forward about 3.53 m.", "Forward, roughly 3.5 metres."),
    (DIR, "They move forward about 3.53 m.", "The person walks straight ahead."),
    (DIR, "They stay in place.", "They don't really go anywhere."),
    (DIR, "They stay in place.", "The person remains on the spot."),
    (DIR, "They stay in place.", "They stand still."),
    (DIR, "They move backward about 2.94 m.", "They step back about 3 meters."),
    (DIR, "They move right about 1.5 m.", "To the right."),
    (DIR, "They move forward about 3.53 m.", "Ahead, about 3.5 m."),
    (DIR, "They stay in place.", "In the same spot the whole time."),
    (TURN, "They turn right by about 88 degrees.", "They turn clockwise, about 90 degrees."),
    (TURN, "They turn right by about 88 degrees.", "Yes, to the right."),
    (TURN, "They do not turn much.", "No, they keep facing the same way."),
    (TURN, "They do not turn much.", "Not really."),
    (TURN, "They turn left by about 90 degrees.", "They make a quarter turn to the left."),
    (PART, "The left arm.", "Mostly the left hand."),
    (PART, "The right leg.", "It's the right leg that moves the most."),
    (PART, "The torso and head.", "The upper body."),
    (PART, "The left leg.", "left knee"),
    ("Which arm moves more?", "The left arm.", "The left one."),
    (PART, "The right leg.", "Between 1.2 and 2.4 s, the right leg."),
    (COUNT_JUMP, "They jump two times.", "Twice."),
    (COUNT_JUMP, "They jump two times.", "The person jumps 2 times."),
    (COUNT_JUMP, "They do not jump.", "Zero times."),
    (COUNT_JUMP, "They do not jump.", "They never jump."),
    (COUNT_JUMP, "They do not jump.", "None."),
    (COUNT_JUMP, "They jump once.", "Just once."),
    (COUNT_JUMP, "They jump three times.", "3."),
    (COUNT_CROUCH, "They crouch once.", "One squat."),
    (COUNT_JUMP, "They do not jump.", "No jumps at all."),
    ("Does the person do a jump?", "No, that does not happen in this clip.", "No."),
    ("Does the person do a jump?", "No, that does not happen in this clip.", "Nope, there is no jump."),
    ("Does the person do a jump?", "No, that does not happen in this clip.", "The person does not jump."),
    ("True or false: the person does a crouch.", "False.", "That's false."),
    ("Is the person's left hand raised above the head?", "Yes, the left hand goes above the head.", "Yes."),
    ("Does the person jump?", "Yes, they jump twice.", "Yes, two jumps."),
    ("Does the person jump?", "Yes, they jump twice.", "They jump two times."),
    (MC, "E) stays in place", "E"),
    (MC, "C) left", "(C) left"),
    (MC, "A) forward", "The answer is A."),
    (MC, "B) backward", "They move backward."),
    (AFTER_CROUCH, "Then comes a jump, from 6.55 to 7.5 s.", "They jump."),
    (AFTER_CROUCH, "Then comes a jump, from 6.55 to 7.5 s.", "A hop, at about 6.6 to 7.4 seconds."),
    (FIRST, "First they jump, then they crouch.", "The jump comes first."),
    (FIRST, "First they jump, then they crouch.", "They crouch after jumping."),
    (FIRST, "First they jump, then they crouch.", "Jump, then crouch."),
    (AFTER_JUMP, "They raise the left hand above the head.", "They lift their left arm over their head."),
    (PACE, "At a slow pace, about 0.39 m/s over 6.2 s.", "Slowly, about 0.4 meters per second."),
    (PACE, "At walking pace, about 1.3 m/s.", "At a walking pace."),
    (PACE, "At running pace, about 3.1 m/s.", "About 3 m/s."),
    (DOING, REASON_TRAVEL, "They are walking forward and turning right."),
    (DOING, REASON_IN_PLACE, "Probably exercising on the spot."),
    (TRAVEL_FAR, "About 3.5 m forward.", "Roughly three and a half meters."),
    # the bench's own phrasings (schemas/vocabulary.py's annotator)
    ("Which way does the person travel?", "The person travels to the left about 5.8 m.", "Leftwards, roughly six metres."),
    (PACE, "The person barely moves from where they started.", "Hardly at all; they stay where they are."),
    ("What does the person do first?", "They begin by crouching down.", "A squat."),
    ("What happens first: walking or jumping?", "Walking comes first, then jumping.", "They walk first and jump afterwards."),
    ("How does the movement change over the clip?",
     "The right arm moves most at the beginning; towards the end the right leg takes over.",
     "First the right arm, then the right leg."),
    ("Does the person stay in place?", "No, they do not stay in place.", "No, they move around."),
    ("Is the left arm the most active part of the body midway through the clip?",
     "No, the left arm does not move the most then.", "No, the right leg does."),
    ("How does the person turn: A) turns left, B) turns right, or C) does not turn?", "C) does not turn.",
     "They don't turn."),
    ("Does the person turn to the left or to the right?", "They turn right, by about 88 degrees.", "To the right."),
    ("Where does the person go during the clip?", "Nowhere: they stay in one place.", "Nowhere."),
    (DOING, "Probably doing squats, since they crouch down one time and stay in place.", "Squatting once in place."),
]  # fmt: skip


def bag_encode(texts):
    """Unit bag-of-words vectors: the similarity fallback without loading MiniLM (fast, deterministic)."""
    vocab = sorted({w for t in texts for w in t.lower().split()})
    out = np.zeros((len(texts), max(1, len(vocab))))
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, vocab.index(w)] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _judge(pairs):
    items = [{"question": q, "answer": a, "prediction": p} for q, a, p in pairs]
    return OfflineJudge(encode=bag_encode).judge_all(items)


def test_hand_written_pairs_cover_every_fact_kind():
    assert len(CONTRADICTIONS) >= 60 and len(PARAPHRASES) >= 40
    assert len(set(CONTRADICTIONS)) == len(CONTRADICTIONS) and len(set(PARAPHRASES)) == len(PARAPHRASES)
    kinds = set()
    for q, a, _ in CONTRADICTIONS + PARAPHRASES:
        info = parse_question(q)
        f = parse_answer(a, info)
        kinds |= {k for k in ("yes_no", "option", "direction", "turn", "body_part", "event", "count", "pace", "order")
                  if f.states(k)} | {u for u in TOLERANCE if f.quantity.get(u)}  # fmt: skip
    assert kinds >= {"yes_no", "option", "direction", "turn", "body_part", "event", "count", "pace", "order", "m",
                     "s", "m/s", "deg"}  # fmt: skip


def test_contradictions_are_judged_wrong():
    js = _judge(CONTRADICTIONS)
    wrong = [j.pred == "no" for j in js]
    missed = [(p, j.reason) for (_, _, p), j in zip(CONTRADICTIONS, js, strict=True) if j.pred != "no"]
    assert np.mean(wrong) >= 0.95, missed
    assert not missed, missed  # all of them, in fact
    assert all(j.score <= 2 for j in js)
    # decided by the facts, so the similarity model (here a bag-of-words stand-in for MiniLM) plays no part
    assert all(j.reason.startswith(("contradiction", "omission")) for j in js)


def test_paraphrases_are_judged_right():
    js = _judge(PARAPHRASES)
    right = [j.pred == "yes" for j in js]
    missed = [(p, j.reason) for (_, _, p), j in zip(PARAPHRASES, js, strict=True) if j.pred != "yes"]
    assert np.mean(right) >= 0.90, missed
    assert not missed, missed
    # decided by the facts, not by word overlap: each names the facts it agrees on
    assert sum(j.reason.startswith(("agree", "exact")) for j in js) >= len(PARAPHRASES) - 3


def _facts(question: str, answer: str):
    return parse_answer(answer, parse_question(question))


def test_trap_back():
    assert _facts(DIR, "They step back.").direction == {"backward"}
    f = _facts(PART, "Their back.")
    assert f.body_part == {(None, "torso and head")} and not f.direction
    f = _facts(DIR, "They walk back and forth.")
    assert "backward" not in f.direction


def test_trap_right():
    assert _facts("Does the person jump?", "Right, they jump.").yes_no == "yes"
    f = _facts(PART, "Right arm.")
    assert f.yes_no is None and f.body_part == {("right", "arm")}
    assert _facts(TURN, "They turn right.").turn == {"right"}
    assert _facts(DIR, "Right.").direction == {"right"}  # a bare "right" to a direction question


def test_trap_left():
    assert not _facts(DIR, "Nothing is left of the first pose.").direction
    assert _facts(PART, "The left arm.").body_part == {("left", "arm")}
    assert _facts(DIR, "They go left.").direction == {"left"}
    assert _facts(DIR, "They go left.").body_part == set()


def test_trap_head():
    f = _facts(DIR, "They head to the left.")
    assert f.direction == {"left"} and not f.body_part
    assert _facts(PART, "The head moves most.").body_part == {(None, "torso and head")}
    f = _facts(AFTER_JUMP, "They raise both hands above the head.")
    assert {"left hand above head", "right hand above head"} <= f.event
    assert (None, "torso and head") not in f.body_part  # "above the head" is where the hands go


def test_trap_negation():
    f = _facts(COUNT_JUMP, "The person does not jump.")
    assert f.neg["event"] == {"jump"} and f.count == {"jump": 0} and not f.event
    f = _facts(DIR, "They do not move forward; they move back.")
    assert f.neg["direction"] == {"forward"} and f.direction == {"backward"}
    assert _facts(DIR, "The person does not move much.").direction == {"in place"}
    f = _facts(PART, "Not the left arm but the right arm.")
    assert f.body_part == {("right", "arm")} and f.neg["body_part"] == {("left", "arm")}


def test_trap_no_as_number_or_answer():
    f = _facts(COUNT_JUMP, "No jumps.")
    assert f.count == {"jump": 0} and f.yes_no is None
    assert _facts(COUNT_JUMP, "No, they jump twice.").count == {"jump": 2}
    assert _facts("Does the person jump?", "No.").yes_no == "no"
    assert _facts("Does the person jump?", "No jumps at all.").yes_no == "no"
    assert _facts(COUNT_JUMP, "None.").count == {None: 0}


def test_trap_once_still_and_numbers():
    assert _facts(AFTER_JUMP, "Once they land, they crouch.").count == {}
    assert _facts(COUNT_JUMP, "They jump once.").count == {"jump": 1}
    f = _facts(DIR, "They are still moving forward.")
    assert "still" not in f.pace and f.direction == {"forward"}
    assert _facts(PACE, "They stand still.").pace == {"still"}
    f = _facts(DIR, "They move forward 2.5m in 3s, turning 90°.")
    assert f.quantity == {"m": [2.5], "s": [3.0], "deg": [90.0]}
    assert _facts(COUNT_JUMP, "They jump 3 times over 2 m.").count == {"jump": 3}  # metres are not a count


def test_long_answers_are_read_up_to_a_cap():
    """A predictions file is untrusted: only the first MAX_CHARS characters of an answer are read."""
    assert _facts(COUNT_JUMP, "They jump " + "and " * MAX_CHARS + "twice.").count == {}
    assert _facts(COUNT_JUMP, "They jump twice " + "and " * MAX_CHARS).count == {"jump": 2}
    assert _facts(COUNT_JUMP, "not " * 100_000 + "jump").count == {}


def test_numbers_within_tolerance():
    q = parse_question(DIR)
    ref = parse_answer("They move forward about 2.74 m.", q)
    assert compare(ref, parse_answer("Forward, about 2.5 m.", q), q).status == "agree"  # 9 % off
    assert compare(ref, parse_answer("Forward, about 3.3 m.", q), q).status == "agree"  # 20 % off
    assert compare(ref, parse_answer("Forward, about 3.6 m.", q), q).status == "contradiction"  # 31 % off
    small = parse_answer("They move forward about 0.5 m.", q)
    assert compare(small, parse_answer("Forward about 0.75 m.", q), q).status == "agree"  # within the absolute 0.3 m


def test_reference_facts_column_is_preferred():
    q = parse_question(COUNT_JUMP)
    ref = facts_from_record(json.dumps({"event": "jump", "count": 0}), q)
    assert ref.count == {"jump": 0} and ref.neg["event"] == {"jump"}
    judge = OfflineJudge(encode=bag_encode)
    # the text alone says nothing countable; the column says zero jumps
    item = {"question": COUNT_JUMP, "answer": "Not a single time.", "facts": json.dumps({"event": "jump", "count": 0})}
    assert judge.judge_all([{**item, "prediction": "Twice."}])[0].pred == "no"
    assert judge.judge_all([{**item, "prediction": "Zero times."}])[0].pred == "yes"
    # a yes/no reference's other keys are the proposition: a "no" denies it
    q = parse_question("Does the person raise the left hand above the head?")
    f = facts_from_record({"event": "left hand above head", "side": "left", "yes_no": "no"}, q)
    assert f.yes_no == "no" and f.neg["event"] == {"left hand above head"} and not f.event
    item = {"question": q.text, "answer": "No.", "facts": json.dumps({"event": "left hand above head", "yes_no": "no"})}
    assert judge.judge_all([{**item, "prediction": "The person raises the left hand above the head."}])[0].pred == "no"
    assert facts_from_record("not json", q) is None and facts_from_record(None, q) is None
    f = facts_from_record({"direction": "forward", "distance_m": 2.5, "order": ["crouch", "jump"]}, parse_question(DIR))
    assert f.direction == {"forward"} and f.quantity["m"] == [2.5] and f.relations() == {("crouch", "jump")}


BENCH = [
    {"question_id": "q1", "question": DIR, "answer": "They move forward about 3.53 m.", "category": "direction"},
    {"question_id": "q2", "question": TURN, "answer": "They turn right by about 88 degrees.", "category": "direction"},
    {"question_id": "q3", "question": PART, "answer": "The left leg.", "category": "body_part"},
    {"question_id": "q4", "question": COUNT_JUMP, "answer": "They jump 2 times.", "category": "counting"},
    {"question_id": "q5", "question": "Does the person do a jump?", "answer": "No, that does not happen in this clip.",
     "category": "hallucination"},
    {"question_id": "q6", "question": FIRST, "answer": "First they crouch, then they jump.", "category": "sequentiality"},
    {"question_id": "q7", "question": MC, "answer": "E) stays in place", "category": "direction"},
    {"question_id": "q8", "question": PACE, "answer": "At a slow pace, about 0.39 m/s.", "category": "counting"},
    {"question_id": "q9", "question": DOING, "answer": REASON_IN_PLACE, "category": "reasoning"},
    {"question_id": "q10", "question": "What does the person do in the video?", "answer": "A person waves at a friend.",
     "category": "reasoning"},
]  # fmt: skip


def test_generated_contradictions_and_paraphrases():
    rng = np.random.default_rng(0)
    edits = contradictions("First they crouch, then they jump.", FIRST, rng)
    assert edits["order"] == "First they jump, then they crouch."
    assert contradictions("They move forward about 3.53 m.", DIR, rng)["direction"] == "They move backward about 3.53 m."
    assert contradictions("The left leg.", PART, rng)["body_part"] == "The left arm."
    assert contradictions("They jump 1 time.", COUNT_JUMP, rng)["count"] == "They jump 3 times."
    assert contradictions("They do not jump.", COUNT_JUMP, rng)["count"] == "They jump."
    assert contradictions("No, that does not happen.", "Does the person jump?", rng)["yes_no"] == \
        "Yes, that does not happen."  # fmt: skip
    kind, text = paraphrase("They jump 2 times.", COUNT_JUMP, np.random.default_rng(1))
    assert text != "They jump 2 times." and kind in ("event", "count")
    items = calibration_set(BENCH, n=10, seed=0)
    assert {i["expect"] for i in items} == {"yes", "no"}
    assert sum(i["expect"] == "no" for i in items) == 9  # every reference with a fact, not the free-text one
    assert calibration_set(BENCH, n=10, seed=0) == items  # deterministic for a seed
    assert all(i["prediction"] != i["answer"] for i in items)
    js = OfflineJudge(encode=bag_encode).judge_all(items)
    report = calibration_report(items, [js])
    assert report["contradictions"]["rate"] == 1.0 and report["paraphrases"]["rate"] == 1.0 and report["ok"]
    assert len(report["contradictions"]["by_edit"]) >= 6


def test_calibration_fails_a_judge_that_only_matches_words():
    """A judge that calls everything with enough word overlap right (the old failure) fails calibration."""

    class Overlap:
        def judge_all(self, items, seed=0):
            out = []
            for i in items:
                a, p = set(i["answer"].lower().split()), set(i["prediction"].lower().split())
                out.append(Judgement("yes" if len(a & p) >= len(a) / 2 else "no", 3))
            return out

    items = calibration_set(BENCH, n=10, seed=0)
    report = calibration_report(items, [Overlap().judge_all(items)])
    assert not report["ok"] and report["contradictions"]["rate"] < 0.95
    assert report["misjudged"] and report["misjudged"][0]["expect"] == "no"
