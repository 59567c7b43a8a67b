"""``movid requeue``: quarantined records go back through the pipeline after a fix; the result is the
build a fresh run on the fixed sources makes, and units without matching records are not redone."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq

from movid.cli import main
from tests.conftest import local_build


def _shards(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for t in ("motion", "video", "instruction", "quarantine")
            for p in sorted((out / t).rglob("*.parquet"))}  # fmt: skip


def _reasons(out):
    return {r["record_id"]: r["reason"] for f in sorted((out / "quarantine").rglob("*.parquet"))
            for r in pq.read_table(f).to_pylist()}  # fmt: skip


def test_requeue_after_fixing_sources_equals_a_fresh_build(broken_tree, tmp_path, capsys):
    root = tmp_path / "humanml3d"
    shutil.copytree(broken_tree, root)
    out = tmp_path / "out"
    sets = ("plan.unit_size=8", "shard.max_rows=40")
    local_build(root, out, *sets)
    assert _reasons(out)["900000"] == "missing_file" and _reasons(out)["900007"] == "no_split"
    units_before = {p.parent.name: p.stat().st_mtime_ns for p in (out / ".movid" / "units").glob("*/stats.json")}

    # the fix: the missing joints file appears
    feats = np.load(root / "new_joint_vecs" / "900000.npy")
    shutil.copy(root / "new_joints" / "900001.npy", root / "new_joints" / "900000.npy")  # same synthetic clip
    assert np.load(root / "new_joints" / "900000.npy").shape[0] == feats.shape[0]

    # a misspelt reason is one line, exit 2, with the build's reasons; nothing is run
    assert main(["requeue", str(out), "--reason", "missng_file", "--executor", "local", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no record of this build is quarantined for 'missng_file'; its quarantine reasons: " in err
    assert "missing_file (" in err and len(err.strip().splitlines()) == 1
    # only missing_file first; the other quarantined records stay where they are
    assert main(["requeue", str(out), "--reason", "missing_file", "--executor", "local", "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    got = _reasons(out)
    assert "900000" not in got and m["reconciliation"]["ok"] and m["requeue"]["round"] == 1
    motion_ids = {i for f in (out / "motion").rglob("*.parquet") for i in pq.read_table(f).column("motion_id").to_pylist()}
    assert "900000" in motion_ids
    redone = set(m["requeue"]["units"])
    # units without a matching record (nor a changed plan) were kept, not redone
    kept = {u: t for u, t in units_before.items() if u not in redone and u != "plan"}
    assert len(kept) >= 3 and len(redone) >= 1
    for u, t in kept.items():
        assert (out / ".movid" / "units" / u / "stats.json").stat().st_mtime_ns == t, f"{u} was redone"

    assert _reasons(out)["900007"] == "no_split" and _reasons(out)["900004"] == "non_finite"

    # a fix of the split lists changes the plan: the units it reshapes run again
    with open(root / "train.txt", "a") as fh:
        fh.write("900007\n")
    # then everything that is left; the result is a fresh build of the fixed sources, byte for byte
    assert main(["requeue", str(out), "--executor", "local", "--quiet"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert "900007" not in _reasons(out) and m["requeue"]["round"] == 2 and m["reconciliation"]["ok"]
    fresh = local_build(root, tmp_path / "fresh", *sets)
    assert _shards(out) == _shards(tmp_path / "fresh")
    assert m["counts"] == fresh["counts"]
    assert main(["validate", str(out), "--quiet"]) == 0


def test_requeue_with_nothing_to_do_changes_nothing(clean_tree, tmp_path, capsys):
    out = tmp_path / "out"
    local_build(clean_tree, out, "plan.unit_size=16")
    before = _shards(out)
    manifest = (out / "manifest.json").read_bytes()
    assert main(["requeue", str(out), "--reason", "missing_file", "--executor", "local", "--quiet"]) == 0
    assert "nothing to requeue" in capsys.readouterr().out
    assert _shards(out) == before and (out / "manifest.json").read_bytes() == manifest
