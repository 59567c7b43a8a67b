import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from pipeline.config import BuildConfig
from pipeline.synthetic_motion import Segment, synthesize_joints
from schemas import check_conforms
from schemas.instruction import INSTRUCTION_SCHEMA
from schemas.motion import motion_table
from schemas.video import VIDEO_SCHEMA
from stages.kinematics import joints_to_features
from stages.validate import (
    expectation_class,
    gx_module,
    plausibility,
    plausibility_batch,
    run_suite,
    validate_tables,
)
from tests.implausible import implausible_variants


def _joints(seed=0, action="wave"):
    # (the synthetic walk and run slide their feet — the generator does not plant them — so the clean
    # reference waves; the demo data's walks get the foot_skating flag)
    return synthesize_joints([Segment(action, 3.0)], np.random.default_rng(seed)).astype(np.float32)


def _row(mid, joints, split="train", caption="a person walks forward.", features=None):
    f = joints_to_features(joints) if features is None else features
    return dict(motion_id=mid, source="humanml3d", source_path=f"new_joint_vecs/{mid}.npy", parent_id=None,
                mirror_of=None, start_frame=0, end_frame=len(joints) - 1, split=split, fps=20.0,
                num_frames=len(joints) - 1, features=f, joints=joints[: len(joints) - 1], texts=[{"caption": caption, "tokens": [], "start": 0.0, "end": 0.0}])  # fmt: skip


def _cfg(action="quarantine"):
    cfg = BuildConfig()
    cfg.validation.plausibility.action = action
    return cfg


def _conversation(sid, mid, turns, modality="motion", split="train", video_id=None):
    return {"sample_id": sid, "modality": modality, "motion_id": mid, "video_id": video_id,
            "task": "qa", "category": None, "conversations": [{"role": r, "content": c} for r, c in turns],
            "annotator": {"backend": "template", "model": None, "prompt_version": "v", "params": "{}"}, "split": split}  # fmt: skip


def test_a_plausible_clip_measures_within_human_limits():
    m = plausibility(_joints(), 20.0, _cfg().validation.plausibility)
    assert m["root_speed"] < 3 and m["ground_penetration"] < 0.01 and m["bone_length_change"] < 1e-3
    assert 1 < m["joint_speed"] < 25


def test_a_batch_measures_each_clip_as_if_alone(monkeypatch):
    # clips of all sizes, an empty one, and blocks much smaller than a unit: a clip longer than a block
    # alone, boundaries between clips, measures per clip as if each were measured by itself
    import stages.plausibility as physics

    monkeypatch.setattr(physics, "_BLOCK_FRAMES", 100)
    clean = _joints()
    clips = [clean[:37], clean[:0], clean[5:], *implausible_variants(clean).values(), clean[:1], clean[:64], clean]
    cfg = _cfg().validation.plausibility
    batch = plausibility_batch(np.concatenate(clips), np.array([len(c) for c in clips]), np.full(len(clips), 20.0), cfg)
    for i, clip in enumerate(clips):
        alone = plausibility(clip, 20.0, cfg) if len(clip) else dict.fromkeys(batch, 0.0)
        for k, v in alone.items():
            assert batch[k][i] == pytest.approx(v, rel=1e-6, abs=1e-7), (i, k)
    assert all(len(v) == len(clips) for v in batch.values())


def test_record_suites_expectations_give_the_core_expectations_results():
    # the subclasses that build their configuration once must check, and fail rows, exactly like GX's own
    import pandas as pd

    E = gx_module().expectations
    df = pd.DataFrame({"split": ["train", "dev", "test", "val"], "n": [40, 500, 60, 10], "ok": ["ok", "ok", "bad", "ok"]})

    def suite(in_set, between):
        return [in_set(column="split", value_set=["train", "val", "test"], meta={"reason": "invalid_split"}),
                between(column="n", min_value=20, max_value=196, meta={"reason": "invalid_length"}),
                in_set(column="ok", value_set=["ok"], meta={"reason_in": "ok"})]  # fmt: skip

    core = run_suite("core", df, suite(E.ExpectColumnValuesToBeInSet, E.ExpectColumnValuesToBeBetween))
    ours = run_suite("ours", df, suite(expectation_class("ExpectColumnValuesToBeInSet"),
                                       expectation_class("ExpectColumnValuesToBeBetween")))  # fmt: skip
    assert [(m, rows) for m, rows, _ in ours] == [(m, rows) for m, rows, _ in core] == [
        ({"reason": "invalid_split"}, [1]), ({"reason": "invalid_length"}, [1, 3]), ({"reason_in": "ok"}, [2])]
    assert ours[0][2].expectation_config.type == "movid_expect_column_values_to_be_in_set"
    # the kept configuration follows a change of a field
    e = expectation_class("ExpectColumnValuesToBeBetween")(column="n", min_value=1, max_value=2)
    assert e.configuration.kwargs["max_value"] == 2 and e.configuration is e.configuration
    e.max_value = 9
    assert e.configuration.kwargs["max_value"] == 9 and "_movid_configuration" not in e.dict()


@pytest.mark.parametrize("reason", sorted(implausible_variants(_joints())))
def test_each_implausible_motion_fails_its_own_check(reason):
    clean = _joints()
    table = motion_table([_row("000001", clean), _row("000002", implausible_variants(clean)[reason])])
    result = validate_tables({"motion": table}, _cfg(), source="humanml3d")
    assert [(r.record_id, r.reason, r.stage) for r in result.rejects] == [("000002", reason, "validate")]
    assert "is over validation.plausibility.max_" in result.rejects[0].detail  # names the setting to change
    assert result.tables["motion"].column("motion_id").to_pylist() == ["000001"]
    assert result.counters["motion_in"] == 2 and result.counters["motion_quarantined"] == 1


def test_flag_mode_keeps_implausible_clips_with_their_flags():
    clean = _joints()
    variants = implausible_variants(clean)
    rows = [_row("000001", clean)] + [_row(f"00001{k}", j) for k, j in enumerate(variants.values())]
    result = validate_tables({"motion": motion_table(rows)}, _cfg("flag"), source="humanml3d")
    assert not result.rejects
    t = result.tables["motion"]
    check_conforms(t, "motion")
    flags = dict(zip(t.column("motion_id").to_pylist(), t.column("quality_flags").to_pylist(), strict=True))
    assert flags["000001"] == []
    for k, reason in enumerate(variants):
        assert reason.removeprefix("implausible_") in flags[f"00001{k}"], (reason, flags[f"00001{k}"])
    assert sum(v for k, v in result.counters.items() if k.startswith("flagged_")) >= len(variants)


def test_record_problems_get_their_reasons_and_take_their_conversations_along():
    j = _joints()
    f = joints_to_features(j)
    rows = [_row("000001", j), _row("000002", j, split="holdout"), _row("000003", j, caption="   "),
            _row("000004", j, features=f[:40])]  # features shorter than the joints  # fmt: skip
    ok = [("user", "<motion>\nWhat happens?"), ("assistant", "A walk.")]
    instr = pa.Table.from_pylist([
        _conversation("ok", "000001", ok), _conversation("orphan", "000004", ok),  # its motion is quarantined
        _conversation("roles", "000001", [("assistant", "hi"), ("user", "<motion>\nx")]),
        _conversation("empty", "000001", [("user", "<motion>\nx"), ("assistant", " ")]),
        _conversation("no_token", "000001", [("user", "What happens?"), ("assistant", "A walk.")]),
        _conversation("no_motion", None, ok),
    ], schema=INSTRUCTION_SCHEMA)  # fmt: skip
    result = validate_tables({"motion": motion_table(rows), "instruction": instr}, _cfg("off"), source="humanml3d")
    assert {(r.table, r.record_id): r.reason for r in result.rejects} == {
        ("motion", "000002"): "invalid_split", ("motion", "000003"): "empty_caption",
        ("motion", "000004"): "shape_mismatch", ("instruction", "orphan"): "parent_quarantined",
        ("instruction", "roles"): "malformed_conversation", ("instruction", "empty"): "empty_turn",
        ("instruction", "no_token"): "missing_placeholder", ("instruction", "no_motion"): "missing_motion"}  # fmt: skip
    reasons = {r.reason for r in result.rejects}
    assert {"invalid_split", "empty_caption", "shape_mismatch", "parent_quarantined", "malformed_conversation",
            "empty_turn", "missing_placeholder", "missing_motion"} <= reasons  # fmt: skip
    assert result.tables["instruction"].num_rows == 1
    c = result.counters
    assert c["instruction_in"] == 6 == c["instruction_out"] + c["instruction_quarantined"]


def _jpeg(color=128):
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), color, np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _video(vid, frames, ts, idx=None, n=100):
    k = len(frames)
    return {"video_id": vid, "source": "video", "source_path": f"{vid}.mp4", "split": "train", "fps": 30.0,
            "variable_frame_rate": False, "duration": 3.0, "num_frames": n, "orig_width": 16, "orig_height": 16,
            "rotation": 0, "codec": "h264", "width": 16, "height": 16, "segment_start": 0.0, "segment_end": 3.0,
            "frame_indices": idx if idx is not None else list(range(0, 10 * k, 10)), "frame_timestamps": ts,
            "frames": frames, "decoder": "decord", "captions": ["a person walks."], "motion_id": None,
            "motion_frame_indices": None, "overlap_seconds": None, "offset_seconds": None}  # fmt: skip


def test_video_records_are_checked_frame_by_frame():
    good = [_jpeg()] * 8
    ts = [0.1 * k for k in range(8)]
    videos = pa.Table.from_pylist([
        _video("ok", good, ts),
        _video("truncated_jpeg", good[:7] + [good[0][: len(good[0]) // 2]], ts),
        _video("not_monotonic", good, ts[:4] + ts[3:7]),
        _video("too_few", good[:5], ts[:5]),
        _video("index_out_of_range", good, ts, idx=[k * 20 for k in range(8)], n=100),
    ], schema=VIDEO_SCHEMA)  # fmt: skip
    result = validate_tables({"video": videos}, _cfg(), source="video")
    assert {r.record_id: r.reason for r in result.rejects} == {
        "truncated_jpeg": "undecodable_frame", "not_monotonic": "timestamps_not_increasing",
        "too_few": "wrong_frame_count", "index_out_of_range": "frame_index_out_of_range"}  # fmt: skip
    assert result.tables["video"].column("video_id").to_pylist() == ["ok"]


def test_the_engine_import_is_reported_once_per_process_and_kept_out_of_the_validate_stage():
    # a fresh process: the preload thread imports great-expectations; a unit waiting for it gets the wait
    # back from engine_ready (to leave out of its validate time) and the import's CPU time once
    import json
    import subprocess
    import sys

    code = ("import json, stages.validate as sv; sv.preload(); waited = sv.engine_ready(); "
            "print(json.dumps([waited, sv.setup_seconds(), sv.setup_seconds(), sv.engine_ready()]))")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    waited, setup, again, ready = json.loads(r.stdout.strip().splitlines()[-1])
    assert waited > 0.3 and setup > 0.3  # the caller waited for the import; its CPU time is reported
    assert again == 0.0 and ready < 0.05  # reported once; the context is made once


def test_a_suite_freed_and_replaced_never_runs_with_the_old_thresholds():
    # The old failure: definitions were cached by id() of the expectations list; once a list was freed,
    # CPython hands its memory (and id) to the next list, and a suite ran with the freed one's thresholds.
    # One list refilled with other thresholds is that case made certain: the same id, another content.
    import pandas as pd

    between = expectation_class("ExpectColumnValuesToBeBetween")
    df = pd.DataFrame({"num_frames": [60]})
    expectations: list = []
    verdicts = []
    for lo in (10, 61, 20, 70, 30, 65, 40, 62):
        expectations[:] = [between(column="num_frames", min_value=lo, max_value=None, meta={"reason": "invalid_length"})]
        verdicts.append((lo, [m["reason"] for m, _rows, _r in run_suite("stale", df, expectations)]))
        fresh = [between(column="num_frames", min_value=lo, max_value=None, meta={"reason": "invalid_length"})]
        verdicts.append((lo, [m["reason"] for m, _rows, _r in run_suite("stale", df, fresh)]))
        del fresh  # freed: the next list may take its id
    assert verdicts == [(lo, ["invalid_length"] if lo > 60 else []) for lo, _ in verdicts]


def test_more_configs_than_the_suite_cache_keeps_each_get_their_own_verdict():
    # many distinct configs in one process (more than the suites kept), then configs whose thresholds
    # must reject a 60-frame clip; a section holding a list (unhashable) is keyed by its content too
    from stages.validate import _SUITES_KEPT

    table = motion_table([_row("000001", _joints()[:61])])
    assert table.column("num_frames").to_pylist() == [60]
    seen = []
    for lo in [*range(20, 20 + 2 * _SUITES_KEPT, 2), 61, 30, 62, 61]:
        cfg = _cfg("off")
        cfg.ingest.min_frames = lo
        cfg.ingest.allowed_roots = [f"/data/{lo}"]
        result = validate_tables({"motion": table}, cfg, source="humanml3d")
        seen.append((lo, [r.reason for r in result.rejects]))
    assert seen == [(lo, ["invalid_length"] if lo > 60 else []) for lo, _ in seen]
