"""Red-team corpus, ``movid validate`` on tampered builds (issue 16): the manifest is not trusted. Every case
copies one clean build, tampers with it, runs ``movid validate`` and asserts its exact finding in
``OUT/validation/report.json`` (exit 1, no traceback), and that nothing outside ``OUT`` was read into the
verdict or written: a shard path that leads outside ``OUT`` is a finding and is never opened.

Per-shard tampers that do not disturb each other share one copy and one validate run (each its own test
id); tampers of the manifest as a whole get a copy each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipeline.shards import file_sha256
from tests.redteam.harness import Sandbox, cli_inproc


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished build with quarantine rows and several shards per table (few in all: validate runs the
    record-level suites shard by shard), and its validation report saying ok."""
    from pipeline.sample_data import write_sample_humanml3d
    from tests.conftest import local_build

    root = tmp_path_factory.mktemp("validate-tampered")
    write_sample_humanml3d(root / "humanml3d", n_motions=3, seed=11, broken=True)
    local_build(root / "humanml3d", root / "build", "plan.unit_size=8", "shard.max_rows=4", "annotator.backend=none")
    rc, report, _ = validate(root / "build")
    return root / "build", rc, report


def _copy(base: tuple, root: Path) -> tuple[Path, dict]:
    out = root / "out"
    shutil.copytree(base[0], out, symlinks=True)  # with its report saying ok
    return out, json.loads((out / "manifest.json").read_text())


def _save(out: Path, manifest: dict) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


def validate(out: Path) -> tuple[int, dict, str]:
    res = cli_inproc("validate", out, "--quiet")
    assert "Traceback" not in res.stderr, res.stderr
    return res.rc, json.loads((out / "validation" / "report.json").read_text()), res.stderr


def _shards(manifest: dict, table: str, split: str | None = None) -> list[dict]:
    return [s for s in manifest["shards"] if s["table"] == table and (split is None or s["split"] == split)]


def test_an_untouched_build_is_valid(base):
    _, rc, report = base
    assert rc == 0 and report["ok"] and report["problems"] == [], report["problems"]


# --- per-shard tampers, one copy ---------------------------------------------------------------------------
def _stray_copy(out, m, outside):
    src = _shards(m, "motion", "train")[0]["path"]
    shutil.copy(out / src, out / "motion" / "train" / "part-00000 (copy).parquet")
    return "motion/train/part-00000 (copy).parquet"


def _stray_symlinked_split(out, m, outside):
    (out / "motion" / "extra").symlink_to(out / "motion" / "train")
    return "motion/extra"


def _stray_hidden_file(out, m, outside):
    (out / "quarantine" / ".part-00009.parquet").write_bytes((out / _shards(m, "quarantine")[0]["path"]).read_bytes())
    return "quarantine/.part-00009.parquet"


def _rows_plus_one(out, m, outside):
    s = _shards(m, "instruction", "train")[0]
    s["rows"] += 1
    return s["path"]


def _deleted(out, m, outside):
    s = _shards(m, "instruction", "train")[1]
    (out / s["path"]).unlink()
    return s["path"]


def _flipped_byte(out, m, outside):
    s = _shards(m, "motion", "train")[1]
    data = bytearray((out / s["path"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / s["path"]).write_bytes(bytes(data))
    return s["path"]


def _truncated_checksum_updated(out, m, outside):
    """A truncated shard whose manifest entry was updated to match: the file cannot be read."""
    s = _shards(m, "instruction", "train")[2]
    p = out / s["path"]
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    s["bytes"], s["sha256"] = p.stat().st_size, file_sha256(p)
    return s["path"]


def _etc_passwd(out, m, outside):
    m["shards"].append({"table": "motion", "split": "train", "path": "../../../../../../../../etc/passwd",
                        "rows": 1, "bytes": 1, "sha256": "0"})  # fmt: skip
    return "../../../../../../../../etc/passwd"


def _absolute_path_to_a_valid_copy(out, m, outside):
    """An absolute path to an exact copy of a shard outside OUT: it would pass every check if it were opened."""
    s = _shards(m, "motion", "train")[0]
    target = outside / "copy.parquet"
    shutil.copy(out / s["path"], target)
    m["shards"].append(dict(s, path=str(target)))
    return str(target)


def _symlink_leading_outside(out, m, outside):
    s = _shards(m, "bench")[0]
    target = outside / "bench.parquet"
    shutil.move(out / s["path"], target)
    (out / s["path"]).symlink_to(target)  # same bytes, so the checksum alone would pass it
    return s["path"]


def _symlink_inside_out(out, m, outside):
    s = _shards(m, "instruction", "train")[3]
    hidden = out / ".movid" / "elsewhere.parquet"
    shutil.move(out / s["path"], hidden)
    (out / s["path"]).symlink_to(hidden)
    return s["path"]


def _entry_without_keys(out, m, outside):
    m["shards"].append({"table": "motion", "path": "motion/train/part-00000.parquet"})
    return repr({"table": "motion", "path": "motion/train/part-00000.parquet"})


SHARD_CASES = {  # id: (tamper, the finding's problem)
    "stray_copy_in_a_split_folder": (_stray_copy, "unlisted_file"),
    "stray_symlinked_split_folder": (_stray_symlinked_split, "unlisted_file"),
    "stray_hidden_shard_in_quarantine": (_stray_hidden_file, "unlisted_file"),
    "shard_rows_plus_one_in_the_manifest": (_rows_plus_one, "rows_mismatch"),
    "deleted_shard": (_deleted, "missing"),
    "flipped_byte": (_flipped_byte, "checksum_mismatch"),
    "truncated_shard_with_its_checksum_updated": (_truncated_checksum_updated, "unreadable"),
    "etc_passwd_shard_path": (_etc_passwd, "outside_out"),
    "absolute_path_to_a_valid_copy_outside": (_absolute_path_to_a_valid_copy, "outside_out"),
    "shard_symlinked_outside": (_symlink_leading_outside, "outside_out"),
    "shard_symlinked_inside_out": (_symlink_inside_out, "symlink"),
    "shard_entry_missing_keys": (_entry_without_keys, "manifest_entry_invalid"),
}


@pytest.fixture(scope="module")
def shard_tampered(tmp_path_factory, base):
    root = tmp_path_factory.mktemp("shard-tampers")
    out, manifest = _copy(base, root)
    outside = root / "outside"
    outside.mkdir()
    shards = {name: tamper(out, manifest, outside) for name, (tamper, _) in SHARD_CASES.items()}
    _save(out, manifest)
    sandbox = Sandbox(root, out)
    before = sandbox.snapshot()
    rc, report, _ = validate(out)
    sandbox.check_unchanged(before)  # nothing outside OUT written
    return rc, report, shards


@pytest.mark.parametrize("case", sorted(SHARD_CASES))
def test_a_tampered_shard_is_a_finding(shard_tampered, case):
    rc, report, shards = shard_tampered
    assert rc == 1 and report["ok"] is False
    problem = SHARD_CASES[case][1]
    found = [p for p in report["problems"] if p.get("shard") == shards[case]]
    assert [p["problem"] for p in found] == [problem], (shards[case], found)


# --- tampers of the manifest as a whole, one copy each -----------------------------------------------------
def _emptied_shard_list(out, m):
    m["shards"] = []
    return {"unlisted_file", "counts_mismatch"}


def _reconciliation_number_edited(out, m):
    m["reconciliation"]["clips"]["in"] += 1
    m["reconciliation"]["clips"]["quarantined"] += 1  # still "balances", so only a recomputation sees it
    return {"reconciliation_mismatch"}


def _reconciliation_links_edited(out, m):
    """Counts inflated, with the reconciliation block made to agree and a shard entry to match."""
    m["counts"]["motion"]["train"] += 1
    _shards(m, "motion", "train")[0]["rows"] += 1
    m["reconciliation"]["links"]["motion_rows_equal_shard_rows"] = True
    return {"counts_mismatch", "rows_mismatch"}


def _reconciliation_failure_hidden(out, m):
    """A stage counter edited so that the recomputed counts do not balance, the block left saying ok."""
    m["stages"]["plan"]["listed"] += 5
    return {"stages_mismatch"}


def _stage_counter_edited_no_run_state(out, m):
    """The same, on a build published without its run state (.movid/): the manifest's own counters are all
    there is, and recomputed they do not balance."""
    shutil.rmtree(out / ".movid")
    m["stages"]["plan"]["listed"] += 5
    return {"reconciliation_failed", "reconciliation_mismatch"}


def _manifest_not_json(out, m):
    (out / "manifest.json").write_text('{"shards": [')
    return {"manifest_invalid"}


def _table_folder_symlinked_outside(out, m):
    shutil.move(out / "motion", out.parent / "motion-elsewhere")
    (out / "motion").symlink_to(out.parent / "motion-elsewhere")
    return {"symlink", "outside_out"}


def _truncated_shard(out, m):
    """The issue's case: a truncated shard (manifest untouched) once crashed validate and left an old "ok"."""
    p = out / _shards(m, "motion", "train")[0]["path"]
    p.write_bytes(p.read_bytes()[:100])
    return {"checksum_mismatch"}


MANIFEST_CASES = {
    "emptied_shard_list": _emptied_shard_list,
    "reconciliation_number_edited": _reconciliation_number_edited,
    "counts_and_reconciliation_links_edited": _reconciliation_links_edited,
    "stage_counter_edited": _reconciliation_failure_hidden,
    "stage_counter_edited_without_run_state": _stage_counter_edited_no_run_state,
    "manifest_not_json": _manifest_not_json,
    "table_folder_symlinked_outside": _table_folder_symlinked_outside,
    "truncated_shard_replaces_an_old_ok_report": _truncated_shard,
}


@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_a_tampered_manifest_is_a_finding(tmp_path, base, case):
    out, manifest = _copy(base, tmp_path)  # with an old report saying ok
    expected = MANIFEST_CASES[case](out, manifest)
    if case != "manifest_not_json":
        _save(out, manifest)
    sandbox = Sandbox(tmp_path, out)
    before = sandbox.snapshot()
    rc, report, stderr = validate(out)
    sandbox.check_unchanged(before)
    assert rc == 1 and report["ok"] is False
    assert expected <= {p["problem"] for p in report["problems"]}, report["problems"]


def test_a_validation_folder_symlinked_outside_is_not_written_through(tmp_path, base):
    out, _ = _copy(base, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.json").write_text('{"ok": true, "mine": 1}')
    shutil.rmtree(out / "validation")
    (out / "validation").symlink_to(elsewhere)
    sandbox = Sandbox(tmp_path, out)
    before = sandbox.snapshot()
    rc, report, _ = validate(out)
    sandbox.check_unchanged(before)
    assert rc == 0 and report["ok"] and not (out / "validation").is_symlink()


# --- the trainer's reader (model.shards.load_table) -------------------------------------------------------------
def test_load_table_refuses_a_shard_path_outside_out(tmp_path, base):
    from model.shards import ShardMismatch, load_table

    out, manifest = _copy(base, tmp_path)
    _absolute_path_to_a_valid_copy(out, manifest, tmp_path)
    _save(out, manifest)
    with pytest.raises(ShardMismatch, match="which is not read .outside OUT"):
        load_table(out, "motion", cache_dir=tmp_path / "hf")


def test_load_table_refuses_a_stray_file_that_would_double_rows(tmp_path, base):
    from model.shards import ShardMismatch, load_table

    out, manifest = _copy(base, tmp_path)
    _stray_copy(out, manifest, tmp_path)
    with pytest.raises(ShardMismatch, match=r"part-00000 \(copy\).parquet is not a shard of the manifest"):
        load_table(out, "motion", cache_dir=tmp_path / "hf")
