"""The declared stage graph (pipeline/stage_graph.py): the doc's block is generated from it, every counter
a stage reports is declared, the reconciliation follows the declared balances, faults come from an explicit
plan, and the clip_stats stage (docs/architecture.md's "how to add a stage") measures its clips."""

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.faults import FaultPlan
from pipeline.stage_graph import SOURCES, STAGES, all_stages, render_graph, unit_resources
from tests.conftest import local_build

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
# counters whose names carry a value (a reason, a flag, a decoder), not declared one by one
_OPEN_ENDED = ("dropped_", "flagged_", "decoded_")


def test_architecture_doc_opens_with_the_declared_graph():
    text = DOC.read_text()
    block = re.search(r"<!-- stage-graph:begin -->\n```\n(.*?)```\n<!-- stage-graph:end -->", text, re.S)
    assert block, "docs/architecture.md lost its stage-graph block"
    assert block.group(1) == render_graph(), "regenerate the block with pipeline.stage_graph.render_graph()"
    assert text.index("<!-- stage-graph:begin -->") < text.index("## Flow of a build")


def test_declarations_are_consistent():
    for kind, names in SOURCES.items():
        assert names[0] == f"ingest_{kind}" and len(set(names)) == len(names), kind
        assert all(n in STAGES for n in names), kind
        assert unit_resources(kind).cpus >= 1
    for stage in all_stages():
        for b in stage.balances:
            assert {b.inp, b.out} <= set(stage.counters), (stage.name, b)
        assert set(stage.rows_out) <= set(stage.outputs) and set(stage.rows_out.values()) <= set(stage.counters)
        assert all("." in c for c in stage.inputs), stage.name
    names = [s.name for s in all_stages()]
    assert len(names) == len(set(names))


def test_every_declared_table_is_known_where_tables_are_listed():
    """A stage's new table needs its schema, its place in the commit order and its folder in OUT."""
    from pipeline.manifest import TABLE_ORDER
    from pipeline.runstate import TABLE_DIRS
    from schemas import TABLES

    for stage in all_stages():
        for table in stage.outputs:
            assert table in TABLES and table in TABLE_ORDER and table in TABLE_DIRS, (stage.name, table)


@pytest.fixture(scope="module")
def broken_build(tmp_path_factory, broken_tree):
    out = tmp_path_factory.mktemp("graph") / "out"
    return out, local_build(broken_tree, out, "plan.unit_size=4")


def test_every_reported_counter_is_declared_and_reconciled(broken_build):
    out, manifest = broken_build
    declared = {s.name: set(s.counters) for s in all_stages()}
    for stage, counts in manifest["stages"].items():
        undeclared = {k for k in counts if k not in declared[stage] and not k.startswith(_OPEN_ENDED)}
        assert not undeclared, (stage, undeclared)
    rec = manifest["reconciliation"]
    assert rec["ok"] and rec["clip_stats"]["ok"] and rec["links"]["clip_stats_rows_equal_shard_rows"]
    for stage in all_stages():  # every balance a stage that ran declares is an entry of the manifest
        if stage.name in manifest["stages"]:
            assert all(b.check in rec for b in stage.balances if not b.only_if_any), stage.name


def test_clip_stats_measure_each_kept_clip(broken_build):
    out, manifest = broken_build
    shards = [s for s in manifest["shards"] if s["table"] in ("motion", "clip_stats")]
    read = {t: pq.read_table([out / s["path"] for s in shards if s["table"] == t][0].parent.parent) for t in
            ("motion", "clip_stats")}  # fmt: skip
    motion, stats = read["motion"], read["clip_stats"]
    assert sorted(stats.column("motion_id").to_pylist()) == sorted(motion.column("motion_id").to_pylist())
    by_id = {r["motion_id"]: r for r in stats.to_pylist()}
    for m in motion.select(["motion_id", "split", "num_frames", "fps", "joints"]).to_pylist()[:8]:
        s = by_id[m["motion_id"]]
        root = np.array(m["joints"])[:, 0, [0, 2]]
        path = np.linalg.norm(np.diff(root, axis=0), axis=1).sum()
        assert s["split"] == m["split"]
        assert s["duration_s"] == pytest.approx(len(m["joints"]) / m["fps"], rel=1e-6)
        assert s["path_length_m"] == pytest.approx(path, rel=1e-5, abs=1e-6)
        assert s["mean_speed_mps"] == pytest.approx(path / s["duration_s"], rel=1e-5, abs=1e-6)
    assert manifest["counts"]["clip_stats"] == manifest["counts"]["motion"]


def test_report_shows_the_clip_statistics(broken_build, tmp_path):
    from pipeline.report import write_report

    out, _ = broken_build
    html = write_report(out, tmp_path / "report").read_text()
    section = html[html.index("<h2>Clip statistics</h2>"):]
    assert "mean speed (m/s)" in section and "<td>train</td>" in section.split("<h2>", 2)[1]


def test_faults_come_from_the_plan_passed_in(tmp_path, monkeypatch):
    """ENOSPC in one unit through FaultPlan (no environment variable): the build stops, the rerun without the
    plan finishes, and a MOVID_FAULT_* variable set in the environment is ignored by the library."""
    from pipeline.build import build
    from pipeline.config import load_config
    from pipeline.sample_data import write_sample_humanml3d

    write_sample_humanml3d(tmp_path / "h", n_motions=6, seed=2)
    cfg = load_config(None, ["executor=local", "plan.unit_size=2", "annotator.tasks=[qa]"],
                      [f"humanml3d={tmp_path / 'h'}"])  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(Exception, match="no space left on device"):
        build(cfg, str(out), show_progress=False, faults=FaultPlan(enospc_unit="train-00001"))
    assert not (out / "manifest.json").exists()
    assert FaultPlan.from_env({}) is None
    assert FaultPlan.from_env({"MOVID_FAULT_ENOSPC_UNIT": "x"}) == FaultPlan(enospc_unit="x")
    monkeypatch.setenv("MOVID_FAULT_ENOSPC_UNIT", "train")  # read only by the CLI entry point
    manifest = build(cfg, str(out), show_progress=False)
    assert manifest["reconciliation"]["ok"] and manifest["units"]["skipped"] >= 1


def test_movid_stages_prints_the_declared_graph(capsys):
    from movid.cli import main
    from pipeline.stage_graph import render_graph

    assert main(["stages"]) == 0
    assert capsys.readouterr().out == render_graph()
