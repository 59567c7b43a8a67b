import jsonschema
import numpy as np
import pytest

from pipeline.config import AnnotatorConfig
from pipeline.synthetic_motion import Segment, synthesize_joints
from schemas.motion import motion_table
from stages.annotate import (
    QA_SCHEMA,
    annotate_motions,
    build_requests,
    load_prompt,
    offline_answer,
    verify_qa,
)
from stages.kinematics import features_to_joints, joints_to_features
from stages.llm_client import OfflineAnnotator
from tests.conftest import REAL_HUMANML3D

PROMPTS = REAL_HUMANML3D.parents[2] / "configs" / "prompts"


def _motion(specs):
    rows = []
    for k, (segs, caption) in enumerate(specs):
        f = joints_to_features(synthesize_joints(segs, np.random.default_rng(k)))
        rows.append(dict(motion_id=f"{k:06d}", source="humanml3d", source_path="x", parent_id=None, mirror_of=None,
                         start_frame=0, end_frame=len(f), split="train", fps=20.0, num_frames=len(f), features=f,
                         joints=features_to_joints(f), texts=[{"caption": caption, "tokens": [], "start": 0.0, "end": 0.0}]))  # fmt: skip
    return motion_table(rows)


MOTION = _motion([([Segment("walk", 3.0, turn="left")], "a person walks and turns left."),
                  ([Segment("jump", 3.0, repeats=2)], "a person jumps twice."),
                  ([Segment("wave", 3.0, side="right")], "someone waves with the right hand.")])  # fmt: skip


def test_prompt_carries_captions_and_facts():
    template, version = load_prompt(PROMPTS, "motion_qa.v1")
    assert version.startswith("motion_qa.v1@")
    reqs = build_requests(MOTION, template, 5)
    assert "a person jumps twice. (whole)" in reqs[1].prompt and "jumps: 2" in reqs[1].prompt
    assert "Write 5 question-answer pairs" in reqs[0].prompt and "turning: left" in reqs[0].prompt


def test_offline_answers_are_valid_true_and_varied():
    template, _ = load_prompt(PROMPTS, "motion_qa.v1")
    categories = set()
    for req in build_requests(MOTION, template, 6):
        payload = offline_answer(req, 6)
        jsonschema.validate(payload, QA_SCHEMA)
        assert all(verify_qa(qa, req.facts) is None for qa in payload["qa"])
        categories |= {qa["category"] for qa in payload["qa"]}
    assert categories >= {"direction", "counting", "body_part", "reasoning", "hallucination"}


@pytest.mark.parametrize("qa,reason", [
    ({"category": "direction", "question": "Where?", "answer": "right", "direction": "right", "body_part": None, "count": None}, "direction"),
    ({"category": "counting", "question": "How many jumps?", "answer": "5", "direction": None, "body_part": None, "count": 5}, "jumps"),
    ({"category": "body_part", "question": "Which part?", "answer": "left leg", "direction": None, "body_part": "left leg", "count": None}, "most active"),
])  # fmt: skip
def test_verification_catches_contradictions(qa, reason):
    template, _ = load_prompt(PROMPTS, "motion_qa.v1")
    facts = build_requests(MOTION, template, 3)[2].facts  # waving in place with the right arm
    assert reason in verify_qa(qa, facts)


def test_annotate_stage_counts_reconcile():
    template, version = load_prompt(PROMPTS, "motion_qa.v1")
    cfg = AnnotatorConfig(qa_per_clip=4)
    res = annotate_motions(MOTION, cfg, annotator=OfflineAnnotator(4), template=template, prompt_version=version)
    c = res.counters
    assert c["clips_in"] == 3 == c["clips_annotated"] and c["qa_in"] == c["qa_out"] == 12 == res.tables["instruction"].num_rows
    row = res.tables["instruction"].to_pylist()[0]
    assert row["task"] == "qa" and row["annotator"]["backend"] == "offline" and row["annotator"]["prompt_version"] == version
