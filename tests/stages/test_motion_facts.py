from pathlib import Path

import numpy as np
import pytest

from pipeline.synthetic_motion import Segment, synthesize_joints
from stages.kinematics import features_to_joints, joints_to_features, mirror_joints
from stages.motion_facts import facts_text, motion_facts, motion_facts_batch


def _facts(*segments, mirror=False, seed=0):
    j = synthesize_joints(list(segments), np.random.default_rng(seed))
    if mirror:
        j = mirror_joints(j)
    return motion_facts(features_to_joints(joints_to_features(j)))  # as stored in the motion table


@pytest.mark.parametrize("segment,key,value", [
    (Segment("walk", 3.0, turn="left"), "turn", "left"),
    (Segment("run", 3.0, turn="right"), "turn", "right"),
    (Segment("walk", 3.0), "direction", "forward"),
    (Segment("walk", 3.0, direction="backward"), "direction", "backward"),
    (Segment("jump", 3.0, repeats=2), "jumps", 2),
    (Segment("squat", 4.0, repeats=3), "crouches", 3),
    (Segment("wave", 3.0, side="right"), "hands_above_head", ["right"]),
    (Segment("idle", 3.0), "direction", "in place"),
])  # fmt: skip
def test_facts_match_the_generated_action(segment, key, value):
    assert _facts(segment)[key] == value


def test_mirror_swaps_sides_in_the_facts():
    f, m = _facts(Segment("wave", 3.0, side="left")), _facts(Segment("wave", 3.0, side="left"), mirror=True)
    assert f["hands_above_head"] == ["left"] and m["hands_above_head"] == ["right"]
    assert {x["part"] for x in f["most_active"]} == {"left arm"} and {x["part"] for x in m["most_active"]} == {"right arm"}


def test_facts_text_names_every_fact():
    text = facts_text(_facts(Segment("walk", 2.0, turn="left"), Segment("jump", 2.0)))
    for needle in ("duration:", "travel:", "turning: left", "jumps: 1", "most active in the middle", "event: jump"):
        assert needle in text


def test_walks_and_runs_are_timed_events_in_order():
    f = _facts(Segment("idle", 2.0), Segment("walk", 3.0), Segment("squat", 3.0, repeats=2), Segment("run", 3.0))
    kinds = [e["event"] for e in f["events"]]
    assert kinds == ["walk", "crouch", "crouch", "run"]
    walk, run = f["events"][0], f["events"][-1]
    assert 2.0 <= walk["from"] < walk["to"] <= 5.2 and 8.0 <= run["from"] < run["to"]
    assert all(type(e["from"]) is float and type(e["to"]) is float for e in f["events"])  # plain JSON values
    assert [e["event"] for e in _facts(Segment("wave", 3.0), Segment("idle", 2.0))["events"]] == ["right hand above head"]


def test_batch_equals_each_clip_alone():
    """A unit's clips go through ``motion_facts_batch`` together: runs, windows and means must stop at clip
    boundaries. Short clips (1-12 frames: fewer steps than the speed filter, empty thirds) sit between long ones."""
    rng = np.random.default_rng(7)
    long = [synthesize_joints([Segment(a, 3.0, turn=t)], rng) for a, t in
            (("walk", "left"), ("run", "none"), ("jump", "right"), ("squat", "none"), ("wave", "none"))]  # fmt: skip
    clips = [long[0], long[1][:1], long[2], long[3][:2], long[1][:3], long[4][:12], long[3], long[2][:5]]
    batch = motion_facts_batch(clips)
    assert batch == [motion_facts_batch([c])[0] for c in clips] == [motion_facts(c) for c in clips]
    assert [f["duration_s"] for f in batch] == [round((len(c) - 1) / 20, 2) for c in clips]
    assert batch[1]["most_active"] == [] and len(batch[3]["most_active"]) == 1 and batch[2]["jumps"] == 1
    assert motion_facts_batch([]) == []


def test_a_near_tie_is_decided_as_each_window_alone_decides_it():
    """A stored sample clip (both arms up) whose arms' mean speeds in the middle third differ only in the last
    bit, so the most active part depends on the order of the sums: summing every window in one ``reduceat``
    named the right arm; the facts computed before batching (and now) name the left one."""
    clip = np.load(Path(__file__).parents[1] / "data" / "motion_facts_tie.npy")
    rng = np.random.default_rng(3)
    others = [synthesize_joints([Segment("walk", 2.0)], rng), synthesize_joints([Segment("jump", 2.5)], rng)]
    want = [("beginning", "right arm"), ("middle", "left arm"), ("end", "right arm")]
    for facts in (motion_facts(clip), motion_facts_batch([others[0], clip, others[1]])[1]):
        assert [(m["window"], m["part"]) for m in facts["most_active"]] == want
