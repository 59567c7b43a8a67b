"""The local executor's worker processes (``local.workers`` > 1): units run in processes forked from this one.

Forked, not spawned: the workers inherit what this process already imported — great-expectations (2-3 s of
import, which every Ray worker pays again), pyarrow, numpy, movid's stages — so a build on one machine pays
its start-up once. The import is finished before the first fork (no thread may be running then). A worker
runs one unit at a time with the cores shared among the workers (``stages.threads``).

A unit that raises stops the build with the unit named, as in the sequential executor; a worker that dies
(a segfault in native code) stops it too, naming the unit it was running: rerun on Ray to isolate the record
(its units split until the record that kills its worker is quarantined). Finished units stay finished.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from stages.threads import allot_threads

__all__ = ["WorkerDied", "run_in_processes", "warm_up"]


class WorkerDied(RuntimeError):
    pass


def warm_up(validation: bool) -> float:
    """Import in this process, before forking, what every unit needs; returns the great-expectations
    import's CPU seconds (0 when validation is off), which the workers then never pay."""
    if not validation:
        return 0.0
    from stages.validate import engine_ready, setup_seconds

    engine_ready()  # the import and the context, in this thread: nothing runs in the background at the fork
    return setup_seconds()


def _init_worker(threads: int) -> None:
    allot_threads(threads)


def run_in_processes(call: Callable, units: Sequence, workers: int, threads: int, on_done: Callable) -> list[dict]:
    """``call(unit)`` for every unit in ``workers`` forked processes, at most ``workers`` in flight beyond
    those running (so a failure leaves few units started for nothing). ``on_done()`` after each unit.
    Raises the unit's own exception (with ``unit_id`` set on it), or WorkerDied."""
    ctx = multiprocessing.get_context("fork")
    results: list[dict] = []
    todo = list(units)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads,)) as pool:  # fmt: skip
        running: dict = {}
        try:
            while todo or running:
                while todo and len(running) < 2 * workers:
                    unit = todo.pop(0)
                    running[pool.submit(call, unit)] = unit
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: running[f].unit_id):
                    unit = running.pop(fut)
                    try:
                        results.append(fut.result())
                    except BrokenProcessPool as exc:
                        died = WorkerDied(f"its worker process died ({exc}); run the build on Ray (executor=ray) "
                                          "to find and quarantine the record that kills it")  # fmt: skip
                        died.unit_id = unit.unit_id
                        raise died from None
                    except BaseException as exc:
                        exc.unit_id = unit.unit_id
                        raise
                    on_done()
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
    return results
