"""Isolating a record that kills its worker process (used by both executors; the Ray executor's module
docstring tells the whole story): a unit split into single-record parts, each run with Python's fault handler
writing to ``OUT``; a part whose worker still dies ends in quarantine as ``worker_crashed`` with the signal and
the innermost frame; the parts merged back into the unit's own output."""

from __future__ import annotations

import faulthandler
import logging
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import BuildConfig
from pipeline.planner import WorkUnit
from pipeline.runstate import RunState
from pipeline.units import write_unit_outputs
from schemas.quarantine import Reject

__all__ = ["WORKER_CRASHED", "merge_split_unit", "quarantine_crashed", "run_isolated", "tidy_split_parts",
           "write_crashed_record"]

log = logging.getLogger("pipeline.executors")  # (the messages the executors log)
UnitFn = Callable[[WorkUnit, BuildConfig, str], dict]
WORKER_CRASHED = "worker_crashed"  # quarantine reason of a record whose worker process died on every attempt
_PART = re.compile(r"^(?P<parent>[^.]+)\.\d{5}$")  # a single-record part of a split unit (planner.split_unit)
_FATAL_SIGNALS = {"Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS", "Floating-point exception": "SIGFPE",
                  "Floating point exception": "SIGFPE", "Aborted": "SIGABRT", "Illegal instruction": "SIGILL"}  # fmt: skip


def _crash_report(out: str, unit_id: str) -> Path:
    # a staging name: a build that starts removes what a dead attempt left (RunState.remove_stale_tmp)

    return RunState(out).units_dir / f".tmp-crash-{unit_id}" / "fatal-error.txt"


def run_isolated(fn: UnitFn, unit: WorkUnit, cfg: BuildConfig, out: str) -> dict:
    """Run a single-record unit with Python's fault handler writing to ``OUT``, so that if the record kills
    the process, the driver can say which signal, and where, in its quarantine row."""
    report = _crash_report(out, unit.unit_id)
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(report, "w") as fh:
        faulthandler.enable(file=fh, all_threads=False)  # the crashing thread only: the report must not vary
        try:
            stats = fn(unit, cfg, out)
        finally:
            faulthandler.enable(file=sys.stderr)  # as Ray's workers have it
    shutil.rmtree(report.parent, ignore_errors=True)
    return stats


def _death_detail(exc: BaseException, out: str, unit: WorkUnit, parent: WorkUnit) -> str:
    """What killed the worker of ``unit``, for its quarantine row: the fatal signal and innermost Python frame
    from the fault handler's report when there is one. Deterministic: the same crash gives the same text."""
    # here: Ray takes ~1 s to import, and only a Ray build gets here
    from ray.exceptions import NodeDiedError, OutOfMemoryError

    report = _crash_report(out, unit.unit_id)
    text = report.read_text(errors="replace") if report.is_file() else ""
    fatal = re.search(r"Fatal Python error: ([^\n]+)", text)
    if fatal:
        what = fatal.group(1).strip()
        signal = _FATAL_SIGNALS.get(what)
        how = f"died of {signal} ({what})" if signal else f"died ({what})"
        stack = re.search(r"(Stack|Current thread [^\n]*) \(most recent call first\):", text)
        frame = re.search(r'File "([^"]+)", line (\d+) in (\S+)', text[stack.end():]) if stack else None
        if frame:
            how += f" in {frame.group(3)} ({Path(frame.group(1)).name}:{frame.group(2)})"
    elif isinstance(exc, OutOfMemoryError):
        how = "was killed by Ray's memory monitor (out of memory)"
    elif isinstance(exc, NodeDiedError):
        how = "was lost with its node"
    else:
        how = "was killed without a fatal-error report (SIGKILL, e.g. by the kernel's out-of-memory killer)"
    records = ", ".join(unit.record_ids)
    return (f"record {records}: its worker process {how} on every attempt, alone and within work unit "
            f"{parent.unit_id} (the unit's other records were built without it)")  # fmt: skip


def write_crashed_record(state, unit: WorkUnit, cfg: BuildConfig, detail: str) -> dict:
    """Finish a single-record unit whose worker died on every attempt: its only output is a quarantine row
    per record id, with the ingest counters that make the manifest reconcile (the record came in and was
    quarantined; its captions were never read, so they are not counted)."""
    kind, stage = unit.source_kind, f"ingest_{unit.source_kind}"
    if kind == "video":
        row = unit.rows[0]  # a VideoRow
        rejects = [Reject(row.video_id, "video", stage, WORKER_CRASHED, detail, kind, row.path, row.split)]
        counts = {"videos_in": 1, "videos_quarantined": 1}
    else:
        if kind == "amass":
            row = unit.rows[0]  # an AmassRow
            splits, path = list(row.record_splits()), row.source_path
        else:
            splits, path = [unit.split] * len(unit.record_ids), None
        rejects = [Reject(rid, "motion", stage, WORKER_CRASHED, detail, kind, path, split)
                   for rid, split in zip(unit.record_ids, splits, strict=True)]  # fmt: skip
        counts = {"clips_in": len(rejects), "clips_quarantined": len(rejects), "rows_out": 0}
    counts[f"dropped_{WORKER_CRASHED}"] = len(rejects)
    return write_unit_outputs(state, unit.unit_id, {}, rejects, {stage: counts}, cfg)


def merge_split_unit(unit: WorkUnit, parts: Sequence[WorkUnit], cfg: BuildConfig, out: str) -> dict:
    """Publish the finished single-record ``parts`` of ``unit`` as the unit's own output: each table's rows
    in record order, quarantine rows under the unit's id, stage counters and timings summed. Then remove the
    parts.
    Idempotent: a unit that is already published is returned as it is."""
    state = RunState(out)
    if state.is_done(unit.unit_id):
        stats = state.read_stats(unit.unit_id)
    else:
        tables: dict[str, list[pa.Table]] = {}
        rejects: list[Reject] = []
        stages: dict[str, Counter] = {}
        seconds: Counter = Counter()
        for part in parts:
            part_stats = state.read_stats(part.unit_id)
            for stage, counts in part_stats["stages"].items():
                stages.setdefault(stage, Counter()).update(counts)
            seconds.update(part_stats.get("seconds", {}))
            for f in sorted(part_stats["files"], key=lambda f: (f["table"], f["split"], f["file"])):
                table = pq.read_table(state.unit_dir(part.unit_id) / f["table"] / f["split"] / f["file"])
                if f["table"] == "quarantine":
                    rejects += [Reject(**row) for row in table.to_pylist()]
                else:
                    tables.setdefault(f["table"], []).append(table)
        merged = {name: pa.concat_tables(parts_of) for name, parts_of in tables.items()}
        stats = write_unit_outputs(state, unit.unit_id, merged, rejects, {k: dict(v) for k, v in stages.items()}, cfg,
                                   seconds=dict(seconds) if seconds else None)  # fmt: skip
    for part in parts:
        shutil.rmtree(state.unit_dir(part.unit_id), ignore_errors=True)
    return stats


def tidy_split_parts(state) -> set[str]:
    """Parts left on disk by an earlier run: removed where their unit was published, and the ids of the units
    still being split returned (a resumed build goes straight to their parts)."""
    splitting = set()
    if state.units_dir.is_dir():
        for d in state.units_dir.iterdir():
            m = _PART.match(d.name)
            if m and state.is_done(m["parent"]):
                shutil.rmtree(d, ignore_errors=True)
            elif m:
                splitting.add(m["parent"])
    return splitting


def quarantine_crashed(unit: WorkUnit, parent: WorkUnit, exc: BaseException, cfg: BuildConfig, out: str, stop) -> None:
    """A single-record part whose worker died on every attempt: its record goes to quarantine (``stop``: what
    ends the build when even that fails)."""
    detail = _death_detail(exc, out, unit, parent)
    log.warning("work unit %s: %s — quarantined (%s)", parent.unit_id, detail, WORKER_CRASHED)
    try:
        write_crashed_record(RunState(out), unit, cfg, detail)
    except Exception as exc2:
        raise stop(unit.unit_id, exc2) from exc2
    shutil.rmtree(_crash_report(out, unit.unit_id).parent, ignore_errors=True)
