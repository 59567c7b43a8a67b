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
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from functools import partial

from tqdm.auto import tqdm

from pipeline.config import BuildConfig, RayConfig, config_hash
from pipeline.isolation import (
    WORKER_CRASHED,
    merge_split_unit,
    quarantine_crashed,
    run_isolated,
    tidy_split_parts,
    write_crashed_record,
)
from pipeline.planner import WorkUnit, split_unit
from pipeline.ratelimit import actor_name, start_shared_limiter
from pipeline.raystart import start_ray
from pipeline.runstate import RunState
from stages.threads import allot_threads, usable_cpus

__all__ = ["WORKER_CRASHED", "WORKER_ENV", "ExecutorError", "LocalExecutor", "RayExecutor", "make_executor", "merge_split_unit",
           "run_isolated", "write_crashed_record"]  # fmt: skip

log = logging.getLogger(__name__)

UnitFn = Callable[[WorkUnit, BuildConfig, str], dict]
# Set in the workers of a joined cluster (a private Ray's workers inherit the driver's environment, which the
# movid command sets): no analytics calls from great-expectations.
WORKER_ENV = {"GX_ANALYTICS_ENABLED": "false"}


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


def _local_unit(fn: UnitFn, cfg: BuildConfig, out: str, unit: WorkUnit) -> dict:
    return fn(unit, cfg, out)


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = workers  # local.workers: 1 in this process; N forked processes; 0 one per CPU
        self.timings: dict[str, float] = {}

    def run(self, fn: UnitFn, units: Sequence[WorkUnit], cfg: BuildConfig, out: str, show_progress=True) -> list[dict]:
        t0 = time.perf_counter()
        # a unit that a Ray build had split goes on as parts, so its output is the same whichever executor ends it
        splitting = tidy_split_parts(RunState(out))
        cpus = usable_cpus()
        workers = min(self.workers or cpus, len(units))
        if workers > 1 and not splitting:
            results = self._run_forked(fn, units, cfg, out, show_progress, workers, cpus)
        else:
            results = self._run_here(fn, units, cfg, out, show_progress, splitting)
        self.timings = {"run": round(time.perf_counter() - t0, 3)} | self.timings
        return results

    def _run_forked(self, fn, units, cfg, out, show_progress, workers: int, cpus: int) -> list[dict]:
        from pipeline.local_pool import run_in_processes, warm_up

        self.timings = {"validate_setup": round(warm_up(cfg.validation.enabled), 3)}  # once, before the forks
        with _progress(len(units), show_progress) as bar:
            try:
                return run_in_processes(partial(_local_unit, fn, cfg, out), units, workers, max(1, cpus // workers),
                                        lambda: bar.update(1))  # fmt: skip
            except Exception as exc:
                raise unit_error(getattr(exc, "unit_id", "?"), exc, out) from exc

    def _run_here(self, fn, units, cfg, out, show_progress, splitting) -> list[dict]:
        results = []
        allot_threads(usable_cpus())  # one unit at a time: the process's CPUs (Ray gives each task its one)
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
        return results


# --- Ray tasks (a split unit's parts and their merge: pipeline.isolation) -----------------------------------


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
        splitting = tidy_split_parts(RunState(out))
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
        if a.backend in ("openai", "openai-batch") and (a.requests_per_minute or a.tokens_per_minute):
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
                        quarantine_crashed(unit, parent, exc, cfg, out, stop)
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


def make_executor(cfg: BuildConfig):
    if cfg.executor == "local":
        return LocalExecutor(cfg.local.workers)
    return RayExecutor(cfg.ray)
