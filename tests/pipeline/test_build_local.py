"""Whole builds on the local executor: reconciliation on broken inputs, manifest truth, reruns."""

import json

import pyarrow.parquet as pq
import pytest

from model.shards import load_table
from pipeline.runstate import RunStateError
from pipeline.shards import file_sha256
from schemas import SCHEMA_VERSION
from tests.conftest import local_build


@pytest.fixture(scope="module")
def broken_build(broken_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "build"
    return out, local_build(broken_tree, out, "plan.unit_size=7", "shard.max_rows=20")


def _read(out, table):
    files = sorted((out / table).rglob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_every_input_record_is_in_a_shard_or_quarantined(broken_tree, broken_build):
    out, manifest = broken_build
    listed = set((broken_tree / "all.txt").read_text().split())
    listed |= {i for s in ("train", "val", "test") for i in (broken_tree / f"{s}.txt").read_text().split()}
    motion = _read(out, "motion")
    quarantine = _read(out, "quarantine")
    in_motion = {r["parent_id"] or r["motion_id"] for r in motion}  # a sub-clip stands for its parent
    clip_rejects = {r["record_id"] for r in quarantine if "/" not in r["record_id"] and "_" not in r["record_id"]}
    assert in_motion.isdisjoint(clip_rejects)
    assert in_motion | clip_rejects == listed  # nothing lost
    # each broken kind landed in quarantine with its specific reason
    expected = json.loads((broken_tree / "BROKEN.json").read_text())
    got = {r["record_id"]: r["reason"] for r in quarantine}
    assert {k: got.get(k) for k in expected} == expected
    assert len(quarantine) == len(expected)  # and nothing else was rejected
    assert all(r["detail"] and r["stage"] in ("plan", "ingest_humanml3d") for r in quarantine)


def test_caption_lines_reconcile(broken_tree, broken_build):
    out, manifest = broken_build
    motion, quarantine = _read(out, "motion"), _read(out, "quarantine")
    captions_out = sum(len(r["texts"]) for r in motion)
    line_rejects = [r for r in quarantine if "/texts:" in r["record_id"]]
    sub_rejects = [r for r in quarantine if r["reason"].startswith("subclip_")]
    ing = manifest["stages"]["ingest_humanml3d"]
    assert ing["captions_out"] == captions_out
    assert ing["captions_in"] == captions_out + len(line_rejects) + len(sub_rejects)  # one caption per bad span here
    assert manifest["reconciliation"]["ok"]
    assert sum(r["category"] == "caption" for r in _read(out, "instruction")) == captions_out


def test_manifest_matches_shards(broken_build):
    out, manifest = broken_build
    assert manifest["schema_version"] == SCHEMA_VERSION
    on_disk = sorted(p.relative_to(out).as_posix() for t in ("motion", "instruction", "clip_stats", "quarantine", "bench")
                     for p in (out / t).rglob("*.parquet"))  # fmt: skip
    assert sorted(s["path"] for s in manifest["shards"]) == on_disk
    for s in manifest["shards"]:
        f = out / s["path"]
        assert (f.stat().st_size, file_sha256(f)) == (s["bytes"], s["sha256"])
        meta = pq.read_metadata(f)
        assert meta.num_rows == s["rows"] <= 20
        assert meta.schema.to_arrow_schema().metadata[b"movid.schema_version"] == SCHEMA_VERSION.encode()
    for table, splits in manifest["counts"].items():
        assert sum(splits.values()) == sum(s["rows"] for s in manifest["shards"] if s["table"] == table)
    assert (out / "README.md").read_text().startswith("---\nconfigs:")
    assert not list((out / ".movid" / "units").glob("*/*/*/*.parquet"))  # staging emptied by the commit


@pytest.mark.parametrize("table", ["motion", "instruction", "quarantine"])
def test_datasets_loads_each_table_offline(broken_build, table, tmp_path):
    out, manifest = broken_build
    dd = load_table(out, table, cache_dir=tmp_path)  # raises if row counts differ from the manifest
    if table == "motion":
        row = dd["train"][0]
        assert len(row["features"][0]) == 263 and len(row["joints"][0]) == 22


def test_rerun_of_a_finished_build_does_nothing(broken_tree, broken_build):
    out, manifest = broken_build
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    again = local_build(broken_tree, out, "plan.unit_size=7", "shard.max_rows=20")
    assert again["units"]["ran"] == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


def test_other_config_in_same_out_is_refused_then_overwritten(clean_tree, tmp_path):
    out = tmp_path / "b"
    local_build(clean_tree, out)
    with pytest.raises(RunStateError, match="config_hash: shard.max_rows 1000 → 3 changed"):
        local_build(clean_tree, out, "shard.max_rows=3")
    m = local_build(clean_tree, out, "shard.max_rows=3", overwrite=True)
    assert max(s["rows"] for s in m["shards"]) == 3


def test_refuses_a_foreign_non_empty_out(clean_tree, tmp_path):
    (tmp_path / "precious.txt").write_text("mine")
    with pytest.raises(RunStateError, match="holds no movid build"):
        local_build(clean_tree, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "mine"


def test_real_humanml3d_tree_builds(real_tree, tmp_path):
    m = local_build(real_tree, tmp_path / "real")
    assert m["counts"]["motion"] == {"train": 1}
    assert m["stages"]["plan"]["listed"] == 29228
    assert m["quarantine_reasons"] == {"no_data": 29227}
    assert m["reconciliation"]["ok"]


def test_commit_interrupted_halfway_completes_on_rerun(clean_tree, tmp_path, monkeypatch):
    import pipeline.manifest as manifest_mod

    reference = tmp_path / "reference"
    local_build(clean_tree, reference, "shard.max_rows=10")
    real_apply = manifest_mod._apply_moves

    def apply_half_then_die(out_dir, moves):
        real_apply(out_dir, moves[: len(moves) // 2])
        raise OSError(28, "No space left on device")

    out = tmp_path / "out"
    monkeypatch.setattr(manifest_mod, "_apply_moves", apply_half_then_die)
    with pytest.raises(OSError, match="No space left"):
        local_build(clean_tree, out, "shard.max_rows=10")
    assert not (out / "manifest.json").exists() and (out / "motion").is_dir()
    monkeypatch.setattr(manifest_mod, "_apply_moves", real_apply)
    m = local_build(clean_tree, out, "shard.max_rows=10")
    assert m["units"]["ran"] == 0  # units were finished; only the commit was left
    ref = {p.relative_to(reference): p.read_bytes() for p in reference.rglob("*.parquet") if ".movid" not in p.parts}
    got = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.parquet") if ".movid" not in p.parts}
    assert got == ref


def test_annotation_does_not_depend_on_caption_conversations(clean_tree, tmp_path):
    m = local_build(clean_tree, tmp_path / "b", "instructions.caption_conversations=false")
    assert "caption_instructions" not in m["stages"] and m["annotator"]["qa_pairs"] > 0
    assert m["reconciliation"]["ok"]
    none = local_build(clean_tree, tmp_path / "c", "instructions.caption_conversations=false", "annotator.backend=none")
    assert none["counts"]["instruction"] == {} and none["reconciliation"]["ok"]


def test_a_start_killed_before_recording_its_build_is_resumed(clean_tree, tmp_path):
    """The driver can die between creating OUT/.movid and renaming run.json into it (seen in the fault
    suite): the rerun must not mistake that for someone else's folder."""
    out = tmp_path / "out"
    (out / ".movid").mkdir(parents=True)
    (out / ".movid" / ".run.json.tmp-1234abcd").write_text("{")
    m = local_build(clean_tree, out, "plan.unit_size=16")
    assert m["reconciliation"]["ok"] and (out / ".movid" / "run.json").is_file()
    other = tmp_path / "other"
    (other / ".movid").mkdir(parents=True)
    (other / ".movid" / "notes.txt").write_text("not ours")
    with pytest.raises(RunStateError, match="holds no movid build"):
        local_build(clean_tree, other)


def test_units_collect_garbage_less_often_and_restore_the_thresholds(clean_tree, tmp_path, monkeypatch):
    import gc

    import pipeline.units as units

    seen = []
    real = units._run_unit

    def spy(*args):
        seen.append(gc.get_threshold())
        return real(*args)

    monkeypatch.setattr(units, "_run_unit", spy)
    before = gc.get_threshold()
    local_build(clean_tree, tmp_path / "out")
    assert seen and all(t[0] >= 20_000 for t in seen)  # inside a unit
    assert gc.get_threshold() == before  # and back after
