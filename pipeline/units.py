"""One work unit, start to finish: run its source's declared stages (``pipeline.stage_graph``) on its
records and publish its staged shards and stats atomically. This is the function every executor runs; it is
idempotent (a finished unit is returned from its marker, not redone).
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import BuildConfig
from pipeline.faults import FaultPlan
from pipeline.plan_units import WorkUnit
from pipeline.runstate import RunState, atomic_write_json
from pipeline.shards import write_table_shards
from pipeline.stage_graph import UnitContext, run_stage, stages_of
from schemas.quarantine import Reject, rejects_table
from stages.threads import thread_settings

__all__ = ["NO_SPLIT", "run_unit", "write_unit_outputs"]

log = logging.getLogger(__name__)
NO_SPLIT = "_"  # staging folder name for tables that are not split (quarantine)


def write_unit_outputs(
    state: RunState, unit_id: str, tables: dict[str, pa.Table], rejects: list[Reject], stages: dict, cfg: BuildConfig,
    seconds: dict | None = None, write=write_table_shards, threads: dict | None = None,
) -> dict:
    """Stage a unit's tables (split by their ``split`` column) and quarantine, then publish them. ``write``:
    the shard writer (a fault plan's, in tests)."""
    tmp = state.new_tmp_unit_dir(unit_id)
    try:
        files = []
        parts: list[tuple[str, str, pa.Table]] = []
        for name, table in tables.items():
            splits = pc.unique(table.column("split")).to_pylist()
            if len(splits) == 1:  # the usual case (units are per split): no copy of the tensors
                parts.append((name, splits[0], table))
                continue
            for split in sorted(splits):
                parts.append((name, split, table.filter(pc.equal(table.column("split"), split))))
        if rejects:
            parts.append(("quarantine", NO_SPLIT, rejects_table([replace(r, unit_id=unit_id) for r in rejects])))
        for name, split, part in parts:
            written = write(part, name, tmp / name / split, max_rows=cfg.shard.max_rows,
                                         compression=cfg.shard.compression,
                                         row_group_rows=cfg.shard.row_group_rows)  # fmt: skip
            files += [{"table": name, "split": split, **f} for f in written]
        stats = {"unit_id": unit_id, "files": files, "stages": stages}
        if seconds is not None:  # where the unit's time went (stage → s); the write itself is not in it
            stats["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
        if threads is not None:  # the intra-op threads it ran with (stages.threads)
            stats["threads"] = threads
        atomic_write_json(tmp / "stats.json", stats)
        state.finish_unit(tmp, unit_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


@contextmanager
def _rarer_collections():
    """A unit builds ~10^5 small objects (captions, conversations and their dicts) that live until its
    tables are written. With CPython's default thresholds every 700 survivors start a collection, and
    the full ones walk everything the process holds (pyarrow, pandas, great-expectations' registries):
    ~40 % of an offline build's time (bench/validate.py: 32.9 s → 21.3 s). Within a unit, collections
    start ~30× less often; reference counting frees almost everything anyway. The defaults come back after."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 20_000), max(old[1], 10), max(old[2], 10))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def run_unit(unit: WorkUnit, cfg: BuildConfig, out: str, faults: FaultPlan | None = None) -> dict:
    """Run ``unit`` (or return its stats if it is done). ``faults``: test-only faults (``pipeline.faults``)."""
    state = RunState(out)
    if state.is_done(unit.unit_id):
        return state.read_stats(unit.unit_id)
    with _rarer_collections():
        return _run_unit(unit, cfg, out, state, faults)


def _run_unit(unit: WorkUnit, cfg: BuildConfig, out: str, state: RunState, faults: FaultPlan | None) -> dict:
    write = write_table_shards
    if faults is not None:
        faults.before_unit(unit.unit_id, unit.record_ids)
        write = faults.shard_writer(unit.unit_id, write)
    stages = stages_of(unit.source_kind)
    for stage in stages:
        if stage.prepare is not None:
            stage.prepare(cfg)
    t0 = time.perf_counter()
    ctx = UnitContext(unit, cfg, out)
    for stage in stages:
        run_stage(stage, ctx)
    stats = write_unit_outputs(state, unit.unit_id, ctx.tables(), ctx.rejects, ctx.counters, cfg,
                               seconds=ctx.seconds, write=write, threads=thread_settings())  # fmt: skip
    log.debug("unit %s done in %.2fs: %s", unit.unit_id, time.perf_counter() - t0,
              Counter(ctx.counters.get(stages[0].name, {})))  # fmt: skip
    return stats
