import pytest

from pipeline.config import ConfigError, load_config
from pipeline.planner import plan_build


def _tree(tmp_path, **files):
    for name, ids in files.items():
        (tmp_path / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return tmp_path


def _plan(root, unit_size=2):
    return plan_build(load_config(None, [f"plan.unit_size={unit_size}"], [f"humanml3d={root}"]))


def test_units_are_deterministic_and_split_pure(tmp_path):
    root = _tree(tmp_path, train=["a1", "a2", "a3", "M1"], test=["b1"], val=["c1", "c1"])
    p1, p2 = _plan(root), _plan(root)
    assert [u.unit_id for u in p1.units] == [u.unit_id for u in p2.units]
    assert [(u.split, u.record_ids) for u in p1.units] == [
        ("train", ("a1", "a2")), ("train", ("a3", "M1")), ("val", ("c1",)), ("test", ("b1",))]  # fmt: skip
    assert [u.index for u in p1.units] == [0, 1, 2, 3]
    assert p1.counters["duplicate_listings"] == 1 and p1.counters["planned"] == 6


def test_plan_rejects_leaks_unsplit_and_unsafe_ids(tmp_path):
    root = _tree(tmp_path, train=["a1", "x", "../etc/passwd"], test=["x"], all=["a1", "x", "lonely"])
    plan = _plan(root)
    got = {(r.record_id, r.reason) for r in plan.rejects}
    assert got == {("x", "split_conflict"), ("lonely", "no_split"), ("../etc/passwd", "invalid_id")}
    assert plan.counters["listed"] == plan.counters["planned"] + plan.counters["quarantined"]


def test_unit_id_changes_with_content(tmp_path):
    a = _plan(_tree(tmp_path, train=["a1", "a2"])).units[0].unit_id
    b = _plan(_tree(tmp_path, train=["a1", "a3"])).units[0].unit_id
    assert a != b


def test_tree_without_split_files_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no split file"):
        _plan(tmp_path)


def test_ids_are_read_bom_safe_and_capped_at_a_file_name(tmp_path):
    (tmp_path / "train.txt").write_bytes(b"\xef\xbb\xbfa1\r\n" + b"L" * 251 + b"\r\n" + b"T" * 252 + b"\rab\x0bcd\n")
    plan = _plan(tmp_path)
    assert [u.record_ids for u in plan.units] == [("a1", "L" * 251)]
    assert {(r.record_id[:4], r.reason) for r in plan.rejects} == {("TTTT", "invalid_id"), ("ab\\x", "invalid_id")}


def test_a_metadata_line_that_is_not_a_json_object_is_its_own_quarantine_row(tmp_path):
    import json

    (tmp_path / "v.mp4").write_bytes(b"")
    lines = [json.dumps({"path": "v.mp4", "split": "train"}), "{broken", "[1, 2]",
             json.dumps({"path": "v.mp4", "video_id": "s", "split": "train", "captions": "a string"}),
             json.dumps({"path": "v.mp4", "video_id": "m", "split": "train", "captions": ["ok", 1]})]  # fmt: skip
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    plan = plan_build(load_config(None, [], [f"video={tmp_path}"]))
    assert {(r.record_id, r.reason) for r in plan.rejects} == {
        ("metadata.jsonl:2", "invalid_json"), ("metadata.jsonl:3", "invalid_metadata"), ("s", "invalid_captions"),
        ("m", "invalid_captions")}  # fmt: skip
    assert [u.record_ids for u in plan.units] == [("v",)]
    assert plan.counters["videos_listed"] == plan.counters["videos_planned"] + plan.counters["videos_quarantined"] == 5
