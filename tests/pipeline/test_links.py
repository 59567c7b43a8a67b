"""A video aligned to a motion that the build quarantines (in another unit) goes to quarantine with the
conversations about it, instead of pointing at nothing; the table-level checks then pass."""

import json

import pyarrow.parquet as pq

from pipeline.sample_data import write_sample_humanml3d, write_sample_videos
from tests.conftest import local_build


def _rows(out, table):
    return [r for f in sorted((out / table).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_video_of_a_quarantined_motion_is_quarantined_with_its_conversations(tmp_path):
    h3d = tmp_path / "humanml3d"
    write_sample_humanml3d(h3d, n_motions=3, seed=5, broken=True)
    c = write_sample_videos(tmp_path / "videos", h3d, 1)
    assert c["videos"] == 1
    meta_file = tmp_path / "videos" / "metadata.jsonl"
    first = json.loads(meta_file.read_text().splitlines()[0])
    # the same file, said to show 900004 — a clip whose features hold NaN, quarantined by its own unit
    with open(meta_file, "a") as fh:
        fh.write(json.dumps({"path": first["path"], "video_id": "shows_broken", "motion_id": "900004",
                             "captions": ["a person walks."], "split": "train"}) + "\n")  # fmt: skip
    out = tmp_path / "out"
    m = local_build(None, out, "align.tolerance_seconds=100", "plan.unit_size=4",
                    sources=[f"humanml3d={h3d}", f"video={tmp_path / 'videos'}"])  # fmt: skip
    q = {(r["table"], r["record_id"]): r for r in _rows(out, "quarantine")}
    assert q[("motion", "900004")]["reason"] == "non_finite"
    v = q[("video", "shows_broken")]
    assert (v["stage"], v["reason"]) == ("link", "motion_quarantined") and "900004" in v["detail"]
    orphans = [r for (t, _), r in q.items() if t == "instruction" and r["reason"] == "parent_quarantined"]
    assert orphans and all(r["record_id"].startswith("shows_broken/") for r in orphans)
    assert "shows_broken" not in {r["video_id"] for r in _rows(out, "video")}
    assert not [r for r in _rows(out, "instruction") if r["video_id"] == "shows_broken"]
    assert m["reconciliation"]["ok"] and m["validation"]["table_level"]["ok"]
    assert m["stages"]["link"]["video_quarantined"] == 1
