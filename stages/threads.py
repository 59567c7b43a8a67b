"""Intra-op threads of a worker process, set by movid from its CPU allotment instead of each library's default.

torch (the SMPL forward, the trainer) and the BLAS/OpenMP pools that numpy and others load each start one thread
per core. Two such processes on two cores thrash: on a busy machine SMPL+H → joints ran at 3.8k frames/s with two
torch threads against 40k with one. So every worker says how many CPUs it was given — a Ray task its assigned
``CPU`` resource, the local executor the CPUs the build may use — and this module applies that number to every
pool loaded so far (threadpoolctl) and to torch, now or when a stage imports it (:func:`apply_to_torch`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["allot_threads", "allotted_threads", "apply_to_torch", "reapply", "thread_settings", "usable_cpus"]

_ALLOTTED: list[int] = []  # this process's allotment, once a worker set it


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which a container or ``taskset`` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # (not Linux)
        return max(1, os.cpu_count() or 1)


def allot_threads(n: float | int) -> int:
    """Give this process ``n`` CPUs' worth of intra-op threads (at least one): the BLAS and OpenMP pools it
    has loaded, and torch if it is imported (a later import is set by :func:`apply_to_torch`). Returns the
    number applied."""
    threads = max(1, int(n))
    _ALLOTTED[:] = [threads]
    reapply()
    if "torch" in sys.modules:
        apply_to_torch(sys.modules["torch"])
    return threads


def reapply() -> None:
    """After an import that may load another pool (great-expectations brings scipy's own OpenBLAS): the
    allotment again, on every pool loaded now (nothing outside a worker)."""
    if _ALLOTTED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=_ALLOTTED[0])


def allotted_threads() -> int | None:
    """The allotment a worker set in this process, or None outside a worker."""
    return _ALLOTTED[0] if _ALLOTTED else None


def apply_to_torch(torch) -> None:
    """Called where a stage imports torch: its intra-op threads as allotted (nothing outside a worker)."""
    if _ALLOTTED and torch.get_num_threads() != _ALLOTTED[0]:
        torch.set_num_threads(_ALLOTTED[0])


def thread_settings() -> dict:
    """What this process runs with now: the allotment, torch's intra-op threads (None when torch is not
    imported) and the largest thread count among the loaded BLAS and OpenMP pools (None when none is loaded)."""
    from threadpoolctl import threadpool_info

    pools = [p["num_threads"] for p in threadpool_info() if p.get("user_api") in ("blas", "openmp")]
    torch = sys.modules.get("torch")
    return {"allotted": allotted_threads(), "torch": torch.get_num_threads() if torch is not None else None,
            "pools": max(pools) if pools else None}  # fmt: skip
