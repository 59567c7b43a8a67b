"""The local executor's forked workers (local.workers > 1, pipeline.local_pool): the same bytes as one process,
great-expectations imported once before the forks, threads shared, and a failing or dying unit named."""

import pytest

from pipeline.build import build
from pipeline.config import load_config
from pipeline.executors import ExecutorError
from pipeline.faults import FaultPlan
from stages.threads import usable_cpus
from tests.conftest import local_build


def _shards(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for t in ("motion", "instruction", "quarantine", "bench")
            for p in sorted((out / t).rglob("*.parquet"))}  # fmt: skip


def _cfg(source, *sets):
    return load_config(None, ["executor=local", "plan.unit_size=8", "shard.max_rows=40", *sets],
                       [f"humanml3d={source}"])  # fmt: skip


def test_forked_workers_write_the_bytes_one_process_writes(broken_tree, tmp_path):
    one = local_build(broken_tree, tmp_path / "one", "plan.unit_size=8", "shard.max_rows=40")
    two = local_build(broken_tree, tmp_path / "two", "plan.unit_size=8", "shard.max_rows=40", "local.workers=2")
    assert one["config_hash"] == two["config_hash"]  # where the work runs is not the build's identity
    a, b = _shards(tmp_path / "one"), _shards(tmp_path / "two")
    assert len(a) > 5 and a == b and two["reconciliation"]["ok"]
    # the import ran in the driver, before the forks (here: already done by the first build); no worker paid it
    assert "validate_setup" in two["seconds"] and "validate_setup" not in two["seconds"]["unit_stages"]
    assert two["threads"]["allotted"] == [max(1, usable_cpus() // 2)]


def test_a_unit_that_fails_in_a_worker_is_named_and_the_rerun_resumes(clean_tree, tmp_path):
    out = tmp_path / "out"
    cfg = _cfg(clean_tree, "local.workers=2")
    with pytest.raises(ExecutorError, match=r"work unit humanml3d-\S+ stopped: no space left on device"):
        build(cfg, str(out), show_progress=False, faults=FaultPlan(enospc_unit="-00002"))
    done = list((out / ".movid" / "units").glob("humanml3d-*/stats.json"))
    assert done and not (out / "manifest.json").exists()
    manifest = build(cfg, str(out), show_progress=False)  # the same command, the fault gone: resumes
    reference = local_build(clean_tree, tmp_path / "ref", "plan.unit_size=8", "shard.max_rows=40")
    assert manifest["units"]["skipped"] == len(done) and _shards(out) == _shards(tmp_path / "ref")
    assert manifest["counts"] == reference["counts"]


def test_a_worker_that_dies_is_named(clean_tree, tmp_path):
    victim = (clean_tree / "train.txt").read_text().split()[3]
    with pytest.raises(ExecutorError, match=r"work unit humanml3d-\S+ stopped: its worker process died.*executor=ray"):
        build(_cfg(clean_tree, "local.workers=2"), str(tmp_path / "out"), show_progress=False,
              faults=FaultPlan(segfault_records=frozenset({victim})))  # fmt: skip
