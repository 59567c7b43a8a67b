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
