"""The bad-input corpus: at least 25 kinds of broken motion, text, video and LLM output, built the way a
user would, each ending in quarantine with its own reason — and the counts reconcile."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.sample_data import write_sample_humanml3d
from tests.conftest import local_build
from tests.implausible import implausible_variants
from tests.llm_server import FakeLLM


def _quarantine(out):
    return [r for f in sorted((out / "quarantine").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _add_implausible(root):
    """One HumanML3D clip per plausibility check (features from a clean clip, joints broken)."""
    base = "000000"
    feats = np.load(root / "new_joint_vecs" / f"{base}.npy")
    joints = np.load(root / "new_joints" / f"{base}.npy")
    expected = {}
    for k, (reason, bad) in enumerate(implausible_variants(joints).items()):
        mid = f"95000{k}"
        np.save(root / "new_joint_vecs" / f"{mid}.npy", feats)
        np.save(root / "new_joints" / f"{mid}.npy", bad.astype(np.float32))
        (root / "texts" / f"{mid}.txt").write_text("a person waves.#a/DET person/NOUN wave/VERB#0.0#0.0\n")
        with open(root / "train.txt", "a") as fh:
            fh.write(mid + "\n")
        with open(root / "all.txt", "a") as fh:
            fh.write(mid + "\n")
        expected[mid] = reason
    return expected


def _broken_videos(d, motion_ids):
    d.mkdir()
    (d / "empty.mp4").write_bytes(b"")
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    meta = [{"path": "empty.mp4", "video_id": "v_empty", "captions": ["x"], "split": "train"},
            {"path": "corrupt.mp4", "video_id": "v_corrupt", "captions": ["x"], "split": "train"},
            {"path": "corrupt.mp4", "video_id": "v_ghost", "motion_id": "999999", "captions": ["x"]},
            {"path": "corrupt.mp4", "video_id": "v_badtimes", "captions": ["x"], "start": 3.0, "end": 1.0,
             "split": "train"}]  # fmt: skip
    (d / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return {"v_empty": "empty_file", "v_corrupt": "unreadable_video", "v_ghost": "unknown_motion",
            "v_badtimes": "invalid_metadata"}  # fmt: skip


@pytest.fixture(scope="module")
def corpus_build(broken_tree, tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    root = d / "humanml3d"
    shutil.copytree(broken_tree, root)
    expected = {k: v for k, v in json.loads((root / "BROKEN.json").read_text()).items() if not k.startswith("_")}
    expected |= _add_implausible(root)
    expected |= _broken_videos(d / "videos", [])
    out = d / "out"
    m = local_build(None, out, "validation.plausibility.action=quarantine", "plan.unit_size=8",
                    sources=[f"humanml3d={root}", f"video={d / 'videos'}"])  # fmt: skip
    return m, out, expected


def test_every_broken_motion_text_and_video_kind_is_quarantined_with_its_reason(corpus_build):
    m, out, expected = corpus_build
    got = {r["record_id"]: r["reason"] for r in _quarantine(out)}
    wrong = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, wrong
    assert m["reconciliation"]["ok"]
    assert len(set(expected.values())) >= 25  # with the two LLM kinds below: 27


def test_quarantine_rows_name_the_record_stage_and_detail(corpus_build):
    _, out, expected = corpus_build
    rows = {r["record_id"]: r for r in _quarantine(out)}
    for rid in expected:
        r = rows[rid]
        assert r["stage"] and r["detail"] and r["source"] and r["reason"] == expected[rid]
    plaus = rows["950000"]
    assert plaus["stage"] == "validate" and "950000" in plaus["detail"] and plaus["split"] == "train"


def test_llm_output_kinds_end_in_quarantine(tmp_path, monkeypatch):
    """Malformed answers (after the one re-ask) and answers that contradict the kinematics."""
    monkeypatch.setenv("MOVID_TEST_KEY", "sk-test")
    write_sample_humanml3d(tmp_path / "h", n_motions=2, seed=4)
    reasons = {}
    for name, server in (("malformed", FakeLLM(p_malformed=1.0)), ("contradicting", FakeLLM(wrong_direction=True))):
        with server:
            sets = ["annotator.backend=openai", f"annotator.base_url={server.base_url}", "annotator.api_key_env=MOVID_TEST_KEY",
                    f"annotator.cache_dir={tmp_path / ('cache-' + name)}", "annotator.tasks=[qa]"]  # fmt: skip
            m = local_build(tmp_path / "h", tmp_path / name, *sets)
        assert m["reconciliation"]["ok"]
        reasons[name] = {r["reason"] for r in _quarantine(tmp_path / name) if r["stage"] == "annotate"}
    assert reasons == {"malformed": {"invalid_answer"}, "contradicting": {"contradicts_kinematics"}}
