import numpy as np
import pytest

from pipeline.synthetic_motion import Segment, synthesize_joints
from stages.kinematics import features_to_joints, joints_to_features, mirror_joints
from stages.motion_facts import facts_text, motion_facts


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
