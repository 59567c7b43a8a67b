"""``movid requeue OUT [--reason R ...]``: send quarantined records back through the pipeline after a fix
(a repaired or added source file, a corrected split list, an edited prompt) without redoing what succeeded.

How: the work units that quarantined a matching record (each quarantine row names its unit), and every
unit the fixed sources now plan differently, are run again; every other unit is kept as it is. The
finished build is first "uncommitted" — its shards go back to their units' staging folders, which the
commit's own rename list makes exact — then the build resumes as after a crash: kept units are skipped,
the requeued ones run, and the commit renumbers shards in plan order and rewrites the manifest, whose
counts reconcile as for any build. A requeue killed midway is finished by running it again.

Re-running a unit regenerates its successful records too; the pipeline is deterministic, so their rows
come out identical, and paid LLM answers come from the response cache. A requeue holds ``OUT``'s lock from
start to end, like a build.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.runstate import TABLE_DIRS, RunState, RunStateError, atomic_write_json, contained_path, lock_out
from schemas.manifest import Manifest, has_manifest
from schemas.manifest import load as load_manifest

__all__ = ["requeue"]

log = logging.getLogger(__name__)
MARKER = "requeue.json"


def _quarantined(out: Path, manifest: Manifest) -> list[dict]:
    rows = []
    for s in manifest.shard_entries("quarantine"):
        rows += pq.read_table(contained_path(out, s.path), columns=["record_id", "reason", "stage", "unit_id"]).to_pylist()
    return rows


def _uncommit(state: RunState) -> None:
    """Move committed shards back to their staging paths (idempotent) and forget the commit. Only what the
    commit wrote goes: a user's files in ``OUT`` stay. (The bench's shards are rewritten by the next commit.)"""
    commit_file = state.dir / "commit.json"
    if commit_file.is_file():
        for m in json.loads(commit_file.read_text()):
            src, dst = contained_path(state.out, m["src"]), contained_path(state.out, m["dst"])
            if dst.exists():
                src.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dst, src)
        commit_file.unlink()
    (state.out / "validation" / "report.json").unlink(missing_ok=True)  # a verdict on the build that was
    (state.out / "README.md").unlink(missing_ok=True)
    for name in (*TABLE_DIRS, "validation"):
        folder = state.out / name
        if folder.is_dir() and not folder.is_symlink():
            for dirpath, _dirs, _files in os.walk(folder, topdown=False):  # split folders left empty
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def _check_reasons(reasons: list[str] | None, quarantined: list[dict]) -> None:
    """A reason no record of this build is quarantined for (often a typo) stops with the build's reasons; a
    build with nothing quarantined has nothing to requeue, whatever the reason (said, exit 0)."""
    counts = Counter(r["reason"] for r in quarantined)
    unknown = [r for r in reasons or [] if r not in counts]
    if unknown and counts:
        known = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        raise RunStateError(f"no record of this build is quarantined for {', '.join(map(repr, unknown))}; "
                            f"its quarantine reasons: {known}")  # fmt: skip


def requeue(out: str | Path, reasons: list[str] | None = None, *, executor: str | None = None,
            address: str | None = None, show_progress: bool = True, wait: bool = False) -> dict:  # fmt: skip
    """Requeue the quarantined records of the finished build in ``out`` (only those with one of
    ``reasons``, when given). Returns the new manifest with ``requeue`` details added. Another run on
    ``out`` makes this one fail at once (:class:`~pipeline.runstate.OutLocked`), or wait with ``wait``."""
    with lock_out(out, "movid requeue", wait=wait):
        return _requeue(out, reasons, executor=executor, address=address, show_progress=show_progress)


def _requeue(out: str | Path, reasons: list[str] | None, *, executor: str | None, address: str | None,
             show_progress: bool) -> dict:  # fmt: skip
    from pipeline.build import PLAN_UNIT, build_identity, check_sources_apart, run_build
    from pipeline.config import build_config_from_dict
    from pipeline.planner import plan_build

    state = RunState(out)
    marker = state.dir / MARKER
    if marker.is_file():  # an interrupted requeue: finish it
        job = json.loads(marker.read_text())
        log.info("finishing an interrupted requeue of %d unit(s)", len(job["units"]))
    else:
        if not has_manifest(state.out):
            raise RunStateError(f"{out}: no finished build to requeue (no manifest.json); run or resume movid build")
        manifest = load_manifest(state.out)
        cfg = build_config_from_dict(manifest.config)
        check_sources_apart(cfg, state.out)
        plan = plan_build(cfg)  # with the sources as they are now
        planned = {u.unit_id for u in plan.units}
        quarantined = _quarantined(state.out, manifest)
        _check_reasons(reasons, quarantined)
        matching = [r for r in quarantined if not reasons or r["reason"] in reasons]
        units = {r["unit_id"] for r in matching if r["unit_id"] in planned}
        changed = {u.unit_id for u in plan.units if not state.is_done(u.unit_id)}  # the fixes changed the plan
        stale = sorted(p.name for p in state.units_dir.iterdir()
                       if p.is_dir() and not p.name.startswith(".") and p.name != PLAN_UNIT and p.name not in planned)  # fmt: skip
        job = {"units": sorted(units | changed), "stale": stale, "reasons": reasons or [],
               "records": len(matching), "skipped_records": sum(1 for r in matching if r["unit_id"] not in planned
                                                                 and r["unit_id"] != PLAN_UNIT),
               "identity": build_identity(cfg, plan),
               "config": manifest.config, "round": manifest.requeue.get("round", 0) + 1}  # fmt: skip
        if not job["units"] and not any(r["unit_id"] == PLAN_UNIT for r in matching):
            log.info("nothing to requeue: no quarantined record%s in a unit of the current plan",
                     f" with reason {', '.join(reasons)}" if reasons else "")  # fmt: skip
            return manifest.raw | {"requeue": {"round": job["round"] - 1, "units": [], "records": len(matching)}}
        atomic_write_json(marker, job)
    # from here on every step can be repeated after a crash
    state.manifest_file.unlink(missing_ok=True)  # the build is no longer complete
    _uncommit(state)
    for unit_id in job["units"] + job["stale"] + [PLAN_UNIT]:
        shutil.rmtree(state.unit_dir(unit_id), ignore_errors=True)
    atomic_write_json(state.run_file, job["identity"])  # the fixed sources are this build's sources now
    cfg = build_config_from_dict(job["config"])
    if executor:
        cfg.executor = executor
    if address:
        cfg.ray.address = address
    manifest = run_build(cfg, str(state.out), show_progress=show_progress)
    manifest["requeue"] = {"round": job["round"], "reasons": job["reasons"], "units": job["units"],
                           "records": job["records"]}  # fmt: skip
    atomic_write_json(state.manifest_file, manifest)
    marker.unlink()
    return manifest
