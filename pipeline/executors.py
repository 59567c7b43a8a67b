"""Executors run work units; stages and units do not know which one runs them.

``local`` runs units in this process, in order (for debugging); a record that crashes the process (a segfault
in native code) takes the build down with it — rerun on Ray to isolate it. ``ray`` runs each unit as a Ray
task on a local Ray it starts, or on a cluster given by address.

Failures on Ray:

- An exception raised by a unit (a bug, a full disk) stops the build with the unit named; it is not retried,
  and finished units stay finished, so the same command resumes once the cause is fixed.
- A unit whose worker process dies (a segfault, the out-of-memory killer, a lost node) is re-run by Ray, up to
  ``ray.max_retries`` times. If it still dies, the unit is split into single-record units
  (``planner.split_unit``), each run with Python's fault handler reporting to ``OUT``: a record whose worker
  survives yields its rows as it would have in the whole unit; a record whose worker still dies ends in
  quarantine (reason ``worker_crashed``, the signal in its detail). The parts are then merged back into the
  unit's own output (``merge_split_unit``), so the commit, the manifest's counts, resume and determinism treat
  it as any other unit. A build resumed after its driver died goes straight to the parts of a unit that was
  being split.
"""

from __future__ import annotations

import errno
import faulthandler
import logging
import os
import re
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from pipeline.config import BuildConfig, RayConfig, config_hash
from pipeline.planner import WorkUnit, split_unit
from pipeline.ratelimit import actor_name, start_shared_limiter
from pipeline.raystart import start_ray
from pipeline.runstate import RunState
from pipeline.units import write_unit_outputs
from schemas.quarantine import Reject
from stages.threads import allot_threads, usable_cpus

__all__ = ["WORKER_CRASHED", "WORKER_ENV", "ExecutorError", "LocalExecutor", "RayExecutor", "make_executor", "merge_split_unit",
           "run_isolated", "write_crashed_record"]  # fmt: skip

log = logging.getLogger(__name__)

UnitFn = Callable[[WorkUnit, BuildConfig, str], dict]
WORKER_CRASHED = "worker_crashed"  # quarantine reason of a record whose worker process died on every attempt
_PART = re.compile(r"^(?P<parent>[^.]+)\.\d{5}$")  # a single-record part of a split unit (planner.split_unit)
# Set in the workers of a joined cluster (a private Ray's workers inherit the driver's environment, which the
# movid command sets): no analytics calls from great-expectations.
WORKER_ENV = {"GX_ANALYTICS_ENABLED": "false"}
_FATAL_SIGNALS = {"Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS", "Floating-point exception": "SIGFPE",
                  "Floating point exception": "SIGFPE", "Aborted": "SIGABRT", "Illegal instruction": "SIGILL"}  # fmt: skip


class ExecutorError(RuntimeError):
    pass


def _progress(total: int, show: bool):
    return tqdm(total=total, desc="work units", unit="unit", disable=not show, mininterval=0.5, dynamic_ncols=True)


def _is_disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
        "no space left on device" in str(exc).lower() or "disk quota exceeded" in str(exc).lower()
    )


def unit_error(unit_id: str, exc: BaseException, out: str | None = None) -> ExecutorError:
    """The error that stops a build: names the unit and, for a full disk, what to do."""
    cause = getattr(exc, "cause", None) or exc  # a Ray task error carries the unit's own exception
    if _is_disk_full(cause):
        path = getattr(cause, "filename", None) or out  # pyarrow's write errors name no file
        where = f" (writing {'' if getattr(cause, 'filename', None) else 'under '}{path})" if path else ""
        quota = isinstance(cause, OSError) and cause.errno == errno.EDQUOT
        what = "disk quota exceeded" if quota else "no space left on device"
        return ExecutorError(f"work unit {unit_id} stopped: {what}{where}; its partial output was removed — "
                             "free space there and rerun the same command (finished units are kept)")  # fmt: skip
    return ExecutorError(f"work unit {unit_id} stopped: {cause}")


class LocalExecutor:
    name = "local"

    def __init__(self):
        self.timings: dict[str, float] = {}

    def run(self, fn: UnitFn, units: Sequence[WorkUnit], cfg: BuildConfig, out: str, show_progress=True) -> list[dict]:

        results = []
        t0 = time.perf_counter()
        allot_threads(usable_cpus())  # one unit at a time: the process's CPUs (Ray gives each task its one)
        # a unit that a Ray build had split goes on as parts, so its output is the same whichever executor ends it
        splitting = _tidy_split_parts(RunState(out))
        with _progress(len(units), show_progress) as bar:
            for unit in units:
                try:
                    if unit.unit_id in splitting:
                        parts = split_unit(unit)
                        for part in parts:
                            fn(part, cfg, out)
                        results.append(merge_split_unit(unit, parts, cfg, out))
                    else:
                        results.append(fn(unit, cfg, out))
                except Exception as exc:
                    raise unit_error(unit.unit_id, exc, out) from exc
                bar.update(1)
        self.timings = {"run": round(time.perf_counter() - t0, 3)}
        return results


# --- isolating a record that kills its worker --------------------------------------------------------------


def _crash_report(out: str, unit_id: str) -> Path:
    # a staging name: a build that starts removes what a dead attempt left (RunState.remove_stale_tmp)

    return RunState(out).units_dir / f".tmp-crash-{unit_id}" / "fatal-error.txt"


def _allot_ray_threads() -> None:
    """A Ray task's intra-op threads: the CPUs Ray assigned it (a unit asks for one)."""
    import ray

    allot_threads(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))


def _call(fn: UnitFn, unit: WorkUnit, cfg: BuildConfig, out: str) -> dict:
    """``fn(unit, cfg, out)`` as a Ray task (the unit function, ``functools.partial`` included, is its argument)."""
    _allot_ray_threads()
    return fn(unit, cfg, out)


def _call_isolated(fn: UnitFn, unit: WorkUnit, cfg: BuildConfig, out: str) -> dict:
    _allot_ray_threads()
    return run_isolated(fn, unit, cfg, out)


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


def _tidy_split_parts(state) -> set[str]:
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


class RayExecutor:
    name = "ray"

    def __init__(self, ray_cfg: RayConfig):
        self.cfg = ray_cfg
        self.timings: dict[str, float] = {}  # seconds: ray start, running units, ray stop

    def _init_ray(self):
        missing = [k for k in self.cfg.forward_env if k not in os.environ]
        if missing:
            raise ExecutorError(f"ray.forward_env: {', '.join(missing)} not set in this environment")
        env = {k: os.environ[k] for k in self.cfg.forward_env}
        started = start_ray(self.cfg.address, num_cpus=self.cfg.num_cpus, object_store_memory=self.cfg.object_store_memory,
                            env_vars=env, cluster_env=WORKER_ENV)  # fmt: skip
        import ray  # (imported by start_ray already: ~1 s, and only this executor needs it)

        return ray, started

    def run(self, fn: UnitFn, units: Sequence[WorkUnit], cfg: BuildConfig, out: str, show_progress=True) -> list[dict]:
        splitting = _tidy_split_parts(RunState(out))
        if not units:
            return []
        t0 = time.perf_counter()
        ray, started = self._init_ray()
        t1 = time.perf_counter()
        try:
            return self._run(ray, fn, units, cfg, out, show_progress, splitting)
        finally:
            t2 = time.perf_counter()
            if started:
                ray.shutdown()
            self.timings = {"ray_start": round(t1 - t0, 3), "run": round(t2 - t1, 3),
                            "ray_stop": round(time.perf_counter() - t2, 3)}  # fmt: skip

    def _run(self, ray, fn, units, cfg, out, show_progress, splitting: set[str]) -> list[dict]:
        # here: Ray takes ~1 s to import, and only a Ray build gets here
        from ray.exceptions import NodeDiedError, OutOfMemoryError, WorkerCrashedError

        worker_died = (WorkerCrashedError, NodeDiedError, OutOfMemoryError)
        tasks = _remote_tasks(ray, fn, self.cfg.max_retries)
        a = cfg.annotator
        if a.backend == "openai" and (a.requests_per_minute or a.tokens_per_minute):
            # one limit for every worker of the build (kept alive by this reference while units run)
            limiter = start_shared_limiter(ray, actor_name(config_hash(cfg)), a.requests_per_minute,  # noqa: F841
                                           a.tokens_per_minute)  # fmt: skip
        cfg_ref = ray.put(cfg)
        window = self.cfg.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        # jobs: ("unit", unit, None), ("split", unit, None), ("part", part, its unit), ("merge", unit, None)
        queue = deque(("split" if u.unit_id in splitting else "unit", u, None) for u in units)
        parts_of: dict[str, list[WorkUnit]] = {}
        parts_left: Counter = Counter()
        in_flight: dict = {}
        results: dict[str, dict] = {}

        def stop(unit_id: str, exc: BaseException):
            for other in in_flight:
                ray.cancel(other)
            return unit_error(unit_id, exc, out)

        with _progress(len(units), show_progress) as bar:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    job, unit, parent = queue.popleft()
                    if job == "split":  # its parts run first (they hold a worker's worth of work between them)
                        parts_of[unit.unit_id] = split_unit(unit)
                        parts_left[unit.unit_id] = len(parts_of[unit.unit_id])
                        queue.extendleft(("part", p, unit) for p in reversed(parts_of[unit.unit_id]))
                        continue
                    in_flight[_submit(tasks, job, unit, fn, cfg_ref, out, parts_of)] = (job, unit, parent)
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    job, unit, parent = in_flight.pop(ref)
                    try:
                        stats = ray.get(ref)
                    except worker_died as exc:
                        if job == "unit":
                            log.warning("work unit %s: its worker died on each of %d attempt(s) (%s); running its "
                                        "%d records one by one to isolate the cause", unit.unit_id,
                                        self.cfg.max_retries + 1, type(exc).__name__, len(unit.record_ids))  # fmt: skip
                            queue.appendleft(("split", unit, None))
                            continue
                        if job == "merge":
                            raise stop(unit.unit_id, exc) from exc
                        _quarantine_crashed(unit, parent, exc, cfg, out, stop)
                    except Exception as exc:
                        raise stop(unit.unit_id, exc) from exc
                    if job == "part":
                        parts_left[parent.unit_id] -= 1
                        if not parts_left[parent.unit_id]:
                            queue.appendleft(("merge", parent, None))
                        continue
                    results[unit.unit_id] = stats
                    bar.update(1)
        return [results[u.unit_id] for u in units]


def _remote_tasks(ray, fn: UnitFn, max_retries: int) -> dict:
    """The Ray tasks of a build: a unit, a single-record part of a split unit, the merge of its parts."""
    # Ray re-runs a task whose worker died (system errors); an exception from the unit is final.
    opts = {"num_cpus": 1, "max_retries": max_retries, "retry_exceptions": False}
    # (the unit function travels as an argument, as to run_isolated: it may carry a fault plan; the task keeps
    # the unit function's name, ray::run_unit, which is how a unit's worker is found)
    name = getattr(fn, "func", fn).__name__
    return {"unit": ray.remote(**opts, name=name)(_call), "part": ray.remote(**opts)(_call_isolated),
            "merge": ray.remote(**opts)(merge_split_unit)}  # fmt: skip


def _submit(tasks: dict, job: str, unit: WorkUnit, fn: UnitFn, cfg_ref, out: str, parts_of: dict):
    """Start a Ray task for ``job`` (unit | part | merge) of ``unit``; its object ref."""
    if job == "unit":
        return tasks["unit"].remote(fn, unit, cfg_ref, out)
    if job == "part":
        return tasks["part"].remote(fn, unit, cfg_ref, out)
    return tasks["merge"].remote(unit, parts_of[unit.unit_id], cfg_ref, out)


def _quarantine_crashed(unit: WorkUnit, parent: WorkUnit, exc: BaseException, cfg: BuildConfig, out: str, stop) -> None:
    """A single-record part whose worker died on every attempt: its record goes to quarantine (``stop``: what
    ends the build when even that fails)."""
    detail = _death_detail(exc, out, unit, parent)
    log.warning("work unit %s: %s — quarantined (%s)", parent.unit_id, detail, WORKER_CRASHED)
    try:
        write_crashed_record(RunState(out), unit, cfg, detail)
    except Exception as exc2:
        raise stop(unit.unit_id, exc2) from exc2
    shutil.rmtree(_crash_report(out, unit.unit_id).parent, ignore_errors=True)


def make_executor(cfg: BuildConfig):
    if cfg.executor == "local":
        return LocalExecutor()
    return RayExecutor(cfg.ray)
