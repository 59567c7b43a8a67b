from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.config import IngestConfig
from pipeline.synthetic_motion import Segment, synthesize_joints
from stages.ingest_humanml3d import ingest_humanml3d
from stages.kinematics import features_to_joints, joints_to_features

LINE = "a person walks.#a/DET person/NOUN walk/VERB#{:.1f}#{:.1f}"


def _clip(root: Path, mid: str, n_frames: int, lines: list[str]):
    features = joints_to_features(synthesize_joints([Segment("walk", n_frames / 20.0)], np.random.default_rng(0)))
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    np.save(root / "new_joint_vecs" / f"{mid}.npy", features[:n_frames])
    np.save(root / "new_joints" / f"{mid}.npy", features_to_joints(features[:n_frames]))
    (root / "texts" / f"{mid}.txt").write_text("\n".join(lines) + "\n")


def _batch(*ids, split="train"):
    return pa.table({"motion_id": list(ids), "split": [split] * len(ids)})


def test_three_rows_whole_clip_subclip_and_mirror(tmp_path):
    _clip(tmp_path, "000001", 120, [LINE.format(0, 0), LINE.format(0, 0), LINE.format(1.0, 4.0)])
    _clip(tmp_path, "M000001", 120, [LINE.format(0, 0)])
    _clip(tmp_path, "000002", 100, [LINE.format(0.5, 3.0)])  # only a span caption: no full-clip row
    res = ingest_humanml3d(_batch("000001", "M000001", "000002"), IngestConfig(), root=tmp_path)
    rows = {r["motion_id"]: r for r in res.tables["motion"].drop_columns(["features", "joints"]).to_pylist()}
    assert set(rows) == {"000001", "000001_0020_0080", "M000001", "000002_0010_0060"}
    sub = rows["000001_0020_0080"]
    assert (sub["parent_id"], sub["start_frame"], sub["end_frame"], sub["num_frames"]) == ("000001", 20, 80, 60)
    assert len(rows["000001"]["texts"]) == 2 and rows["000001"]["parent_id"] is None
    assert rows["M000001"]["mirror_of"] == "000001" and rows["000001"]["mirror_of"] is None
    feats = np.array(res.tables["motion"].column("features")[1].as_py())
    np.testing.assert_array_equal(feats, np.load(tmp_path / "new_joint_vecs/000001.npy")[20:80])
    c = res.counters
    assert (c["clips_in"], c["clips_out"], c["subclips_in"], c["subclips_out"]) == (3, 3, 2, 2)
    assert c["captions_in"] == c["captions_out"] == 5 and not res.rejects


def test_length_limits_come_from_config(tmp_path):
    _clip(tmp_path, "000001", 60, [LINE.format(0, 0)])
    assert ingest_humanml3d(_batch("000001"), IngestConfig(), root=tmp_path).counters["clips_out"] == 1
    res = ingest_humanml3d(_batch("000001"), IngestConfig(min_frames=80), root=tmp_path)
    assert [r.reason for r in res.rejects] == ["too_short"]
    res = ingest_humanml3d(_batch("000001"), IngestConfig(max_frames=50), root=tmp_path)
    assert [r.reason for r in res.rejects] == ["too_long"]


def test_subclips_off_keeps_spans_on_the_full_clip(tmp_path):
    _clip(tmp_path, "000001", 120, [LINE.format(0, 0), LINE.format(1.0, 4.0)])
    res = ingest_humanml3d(_batch("000001"), IngestConfig(subclips=False), root=tmp_path)
    (row,) = res.tables["motion"].select(["motion_id", "texts"]).to_pylist()
    assert row["motion_id"] == "000001" and [t["end"] for t in row["texts"]] == [0.0, 4.0]


def test_every_reject_names_record_and_reason(tmp_path):
    _clip(tmp_path, "000001", 80, [LINE.format(0, 0)])
    np.save(tmp_path / "new_joint_vecs" / "000001.npy", np.full((80, 263), np.inf, np.float32))
    res = ingest_humanml3d(_batch("000001", "000404", split="test"), IngestConfig(), root=tmp_path)
    got = {(r.record_id, r.reason, r.split) for r in res.rejects}
    assert got == {("000001", "non_finite", "test"), ("000404", "no_data", "test")}
    assert "frame 0" in res.rejects[0].detail and res.counters["clips_quarantined"] == 2


def test_real_humanml3d_clip_ingests(real_tree):
    res = ingest_humanml3d(_batch("012314", "M012314"), IngestConfig(), root=real_tree)
    (row,) = res.tables["motion"].to_pylist()
    assert row["motion_id"] == "012314" and row["num_frames"] == 170
    np.testing.assert_array_equal(np.array(row["features"], np.float32),
                                  np.load(real_tree / "new_joint_vecs/012314.npy"))  # fmt: skip
    assert [(r.record_id, r.reason) for r in res.rejects] == [("M012314", "no_data")]


def test_non_finite_computed_motion_is_quarantined_not_written():
    from stages.clips import ClipRows

    acc = ClipRows("ingest_test", "test", IngestConfig())
    feats, joints = np.zeros((60, 263), np.float32), np.zeros((60, 22, 3), np.float32)
    feats[5, 7] = np.nan
    acc.add_clip("x", "train", feats, joints, None, source_path="x.npz")
    res = acc.result()
    assert res.tables["motion"].num_rows == 0 and [r.reason for r in res.rejects] == ["non_finite"]
    assert res.counters["clips_in"] == res.counters["clips_quarantined"] == 1
