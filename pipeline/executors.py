"""Executors run work units; stages and units do not know which one runs them.

``local`` runs units in this process, in order (for debugging). ``ray`` runs each unit as a Ray task on a
local Ray it starts, or on a cluster given by address; a unit whose worker dies is retried by Ray, while
an exception (a bug, a full disk) stops the build with the unit named — finished units stay finished.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from pipeline.config import BuildConfig, RayConfig
from pipeline.planner import WorkUnit

__all__ = ["ExecutorError", "LocalExecutor", "RayExecutor", "make_executor"]

log = logging.getLogger(__name__)

UnitFn = Callable[[WorkUnit, BuildConfig, str], dict]


class ExecutorError(RuntimeError):
    pass


def _progress(total: int, show: bool):
    return tqdm(total=total, desc="work units", unit="unit", disable=not show, mininterval=0.5, dynamic_ncols=True)


class LocalExecutor:
    name = "local"

    def __init__(self):
        self.timings: dict[str, float] = {}

    def run(self, fn: UnitFn, units: Sequence[WorkUnit], cfg: BuildConfig, out: str, show_progress=True) -> list[dict]:
        results = []
        t0 = time.perf_counter()
        with _progress(len(units), show_progress) as bar:
            for unit in units:
                try:
                    results.append(fn(unit, cfg, out))
                except Exception as exc:
                    raise ExecutorError(f"work unit {unit.unit_id} stopped: {exc}") from exc
                bar.update(1)
        self.timings = {"run": round(time.perf_counter() - t0, 3)}
        return results


class RayExecutor:
    name = "ray"

    def __init__(self, ray_cfg: RayConfig):
        self.cfg = ray_cfg
        self.timings: dict[str, float] = {}  # seconds: ray start, running units, ray stop

    def _init_ray(self):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        if ray.is_initialized():
            return ray, False
        # Fault-injection switches (tests) reach the workers, which do not inherit this process's environment.
        env = {k: v for k, v in os.environ.items() if k.startswith("MOVID_FAULT_")}
        missing = [k for k in self.cfg.forward_env if k not in os.environ]
        if missing:
            raise ExecutorError(f"ray.forward_env: {', '.join(missing)} not set in this environment")
        env |= {k: os.environ[k] for k in self.cfg.forward_env}
        runtime_env = {"env_vars": env} if env else {}
        if self.cfg.address:
            import pipeline
            import schemas
            import stages

            # Ship movid's own code to the cluster; its dependencies must be installed on the nodes.
            runtime_env["py_modules"] = [pipeline, stages, schemas]
            ray.init(address=self.cfg.address, runtime_env=runtime_env, log_to_driver=True)
        else:
            # A private Ray that lives as long as this build: no dashboard, no token to manage.
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(num_cpus=self.cfg.num_cpus, object_store_memory=self.cfg.object_store_memory,
                     include_dashboard=False, log_to_driver=True, runtime_env=runtime_env or None)  # fmt: skip
        return ray, True

    def run(self, fn: UnitFn, units: Sequence[WorkUnit], cfg: BuildConfig, out: str, show_progress=True) -> list[dict]:
        if not units:
            return []
        t0 = time.perf_counter()
        ray, started = self._init_ray()
        t1 = time.perf_counter()
        try:
            return self._run(ray, fn, units, cfg, out, show_progress)
        finally:
            t2 = time.perf_counter()
            if started:
                ray.shutdown()
            self.timings = {"ray_start": round(t1 - t0, 3), "run": round(t2 - t1, 3),
                            "ray_stop": round(time.perf_counter() - t2, 3)}  # fmt: skip

    def _run(self, ray, fn, units, cfg, out, show_progress) -> list[dict]:
        # Retry only crashed workers (system errors); an exception from the unit is final.
        task = ray.remote(num_cpus=1, max_retries=self.cfg.max_retries, retry_exceptions=False)(fn)
        a = cfg.annotator
        if a.backend == "openai" and (a.requests_per_minute or a.tokens_per_minute):
            from pipeline.config import config_hash
            from pipeline.ratelimit import actor_name, start_shared_limiter

            # one limit for every worker of the build (kept alive by this reference while units run)
            limiter = start_shared_limiter(ray, actor_name(config_hash(cfg)), a.requests_per_minute,  # noqa: F841
                                           a.tokens_per_minute)  # fmt: skip
        cfg_ref = ray.put(cfg)
        window = self.cfg.max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        pending = list(reversed(units))
        in_flight: dict = {}
        results: dict[str, dict] = {}
        with _progress(len(units), show_progress) as bar:
            while pending or in_flight:
                while pending and len(in_flight) < window:
                    unit = pending.pop()
                    in_flight[task.remote(unit, cfg_ref, out)] = unit
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    unit = in_flight.pop(ref)
                    try:
                        results[unit.unit_id] = ray.get(ref)
                    except Exception as exc:
                        for other in in_flight:
                            ray.cancel(other)
                        cause = getattr(exc, "cause", None) or exc
                        raise ExecutorError(f"work unit {unit.unit_id} stopped: {cause}") from exc
                    bar.update(1)
        return [results[u.unit_id] for u in units]


def make_executor(cfg: BuildConfig):
    if cfg.executor == "local":
        return LocalExecutor()
    return RayExecutor(cfg.ray)
