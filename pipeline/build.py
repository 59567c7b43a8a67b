"""``movid build``: plan → run the work units on an executor → commit shards, manifest and card.

Rerunning the same command on the same ``OUT`` resumes: finished units are skipped, and a complete build
is left as it is.
"""

from __future__ import annotations

import json
import logging
import time

from pipeline.config import BuildConfig, config_hash
from pipeline.executors import make_executor
from pipeline.manifest import commit_build
from pipeline.planner import plan_build
from pipeline.runstate import RunState
from pipeline.units import run_unit, write_unit_outputs
from schemas import SCHEMA_VERSION

__all__ = ["build"]

log = logging.getLogger(__name__)
PLAN_UNIT = "plan"


def build(cfg: BuildConfig, out: str, *, overwrite: bool = False, show_progress: bool = True) -> dict:
    t0 = time.perf_counter()
    plan = plan_build(cfg)
    identity = {"config_hash": config_hash(cfg), "plan_hash": plan.plan_hash, "schema_version": SCHEMA_VERSION}
    state = RunState(out)
    resumed = state.prepare(identity, overwrite=overwrite)
    if resumed and state.is_complete():
        log.info("%s already holds this build; nothing to do", out)
        manifest = json.loads(state.manifest_file.read_text())
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
    executor = make_executor(cfg)
    executor.run(run_unit, pending, cfg, str(state.out), show_progress=show_progress)
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
