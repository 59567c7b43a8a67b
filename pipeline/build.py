"""``movid build``: plan → run the work units on an executor → commit shards, manifest and card.

Rerunning the same command on the same ``OUT`` resumes: finished units are skipped, and a complete build
is left as it is. The driver holds ``OUT``'s lock from start to end (one writer per ``OUT``; the workers
write their units under it), and sources and ``OUT`` never overlap.
"""

from __future__ import annotations

import logging
import os
import time
from functools import partial
from pathlib import Path

from pipeline.annotation import check_api_key
from pipeline.config import BuildConfig, annotation_digests, config_hash
from pipeline.config_identity import hashed_config
from pipeline.executors import make_executor
from pipeline.faults import FaultPlan
from pipeline.manifest import commit_build
from pipeline.planner import plan_build
from pipeline.runstate import RunState, RunStateError, lock_out
from pipeline.units import run_unit, write_unit_outputs
from schemas import SCHEMA_VERSION
from schemas.manifest import load as load_manifest

__all__ = ["build", "build_identity", "check_sources_apart", "run_build", "summarize"]

log = logging.getLogger(__name__)
PLAN_UNIT = "plan"


def check_sources_apart(cfg: BuildConfig, out: str | Path) -> None:
    """Refuse a source (or a folder read for one) inside ``OUT``, and ``OUT`` inside a source root: a build
    writes into ``OUT`` and ``--overwrite`` removes from it, and neither may touch what movid reads. (Paths
    are compared after resolving symlinks.)"""
    real_out = Path(os.path.realpath(out))
    roots = [(f"the {s.kind} source", s.path, True) for s in cfg.sources]
    roots += [(f"{section}.{key}", getattr(getattr(cfg, section), key), False)
              for section, key in (("smpl", "model_dir"), ("amass", "index"), ("amass", "splits"), ("amass", "texts"))]  # fmt: skip
    for name, path, is_root in roots:
        if not path:
            continue
        real = Path(os.path.realpath(path))
        if real == real_out or real_out in real.parents:
            raise RunStateError(f"{name} {path} lies inside --out {out}; keep sources outside OUT (movid writes and "
                                "removes files there)")  # fmt: skip
        if is_root and real in real_out.parents:
            raise RunStateError(f"--out {out} lies inside {name} {path}; choose an --out outside the sources "
                                "(movid writes nothing into a source)")  # fmt: skip


def build(cfg: BuildConfig, out: str, *, overwrite: bool = False, show_progress: bool = True,
          wait: bool = False, faults: FaultPlan | None = None) -> dict:  # fmt: skip
    """Build (or resume, or with ``overwrite`` replace) the dataset in ``out``. Another run on ``out`` makes
    this one fail at once with :class:`~pipeline.runstate.OutLocked`, or, with ``wait``, wait for it.
    ``faults``: test-only fault injection, shipped to every unit with the unit function."""
    check_sources_apart(cfg, out)
    check_api_key(cfg)
    t0 = time.perf_counter()
    plan = plan_build(cfg)  # reads the sources only: a source problem stops the build before OUT is touched
    with lock_out(out, "movid build", wait=wait, create=True):
        return run_build(cfg, out, overwrite=overwrite, show_progress=show_progress, planned=(plan, t0),
                         faults=faults)  # fmt: skip


def build_identity(cfg: BuildConfig, plan) -> dict:
    """What ``OUT/.movid/run.json`` records of a build: a rerun with the same identity resumes it, another is
    refused (or, with ``--overwrite``, replaces it). The text of every prompt and answer schema the build uses
    counts (``annotation_inputs``): a build resumed after a prompt was edited would hold two prompt versions."""
    return {"config_hash": config_hash(cfg), "annotation_inputs": annotation_digests(cfg),
            "plan_hash": plan.plan_hash, "schema_version": SCHEMA_VERSION}


def run_build(cfg: BuildConfig, out: str, *, overwrite: bool = False, show_progress: bool = True,
              planned: tuple | None = None, faults: FaultPlan | None = None) -> dict:  # fmt: skip
    """:func:`build` for a caller that already holds ``OUT``'s lock (``movid requeue``); ``planned``: the
    plan already made, and when its making started."""
    plan, t0 = planned or (None, time.perf_counter())
    plan = plan or plan_build(cfg)
    identity = build_identity(cfg, plan)
    state = RunState(out)
    resumed = state.prepare(identity, overwrite=overwrite, config=hashed_config(cfg))
    if resumed and state.is_complete():
        log.info("%s already holds this build; nothing to do", out)
        manifest = dict(load_manifest(state.out).raw)
        manifest["units"] = manifest["units"] | {"ran": 0, "skipped": manifest["units"]["total"]}
        return manifest
    state.remove_stale_tmp()

    if not state.is_done(PLAN_UNIT):
        write_unit_outputs(state, PLAN_UNIT, {}, plan.rejects, {"plan": dict(plan.counters)}, cfg)
    pending = [u for u in plan.units if not state.is_done(u.unit_id)]
    skipped = len(plan.units) - len(pending)
    log.info("%d work units: %d to run, %d already done (%s executor)", len(plan.units), len(pending), skipped,
             cfg.executor)  # fmt: skip
    t_run = time.perf_counter()
    if cfg.validation.enabled and cfg.executor == "ray" and pending:
        # the table-level checks after the units import great-expectations here (~2-3 s): started now, in a
        # thread, the import overlaps the units (the driver only waits on them) instead of following them
        from stages.validate import preload

        preload()
    executor = make_executor(cfg)
    unit_fn = run_unit if faults is None else partial(run_unit, faults=faults)  # (a partial pickles for Ray)
    executor.run(unit_fn, pending, cfg, str(state.out), show_progress=show_progress)
    t_commit = time.perf_counter()
    if not (state.dir / "commit.json").is_file():  # before the commit starts moving staged files
        from pipeline.links import relink_quarantined_motions

        relink_quarantined_motions(state, [u.unit_id for u in plan.units], cfg)
    unit_stats = [state.read_stats(PLAN_UNIT)] + [state.read_stats(u.unit_id) for u in plan.units]
    extra = {
        "executor": cfg.executor,
        "units": {"total": len(plan.units), "ran": len(pending), "skipped": skipped},
        "seconds": {"plan": round(t_run - t0, 3), "units": round(t_commit - t_run, 3)} | executor.timings,
    }
    manifest = commit_build(state, unit_stats, cfg, identity, extra)
    return manifest


def summarize(manifest: dict) -> str:
    """A short human summary of a manifest (for the CLI)."""
    lines = []
    for table, splits in manifest["counts"].items():
        if splits:
            parts = ", ".join(f"{s} {n}" for s, n in splits.items())
            lines.append(f"  {table:<12} {sum(splits.values()):>8} rows  ({parts})")
    reasons = manifest.get("quarantine_reasons", {})
    if reasons:
        lines.append("  quarantine reasons: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    lines.append(f"  reconciliation: {'ok' if manifest['reconciliation']['ok'] else 'FAILED'}")
    return "\n".join(lines)
