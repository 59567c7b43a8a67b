"""Intra-op threads come from a worker's CPU allotment (stages.threads), not from whatever the process held:
the local executor, a Ray task (tests/pipeline/test_build_ray.py) and the trainer each set them."""

import torch
from threadpoolctl import threadpool_info, threadpool_limits

from model.distributed import set_cpu_threads
from stages.threads import allot_threads, thread_settings, usable_cpus
from tests.conftest import local_build


def _pools() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] in ("blas", "openmp")}


def test_local_executor_sets_threads_from_its_cpus(clean_tree, tmp_path):
    torch.set_num_threads(3)  # what luck left in the process: neither is this process's allotment
    limits = threadpool_limits(limits=3)
    try:
        manifest = local_build(clean_tree, tmp_path / "out", "plan.unit_size=8")
    finally:
        limits.restore_original_limits()
    n = usable_cpus()
    assert manifest["threads"] == {"allotted": [n], "pools": [n], "torch": [n]}


def test_allot_threads_applies_to_every_pool_and_torch():
    try:
        assert allot_threads(1.0) == 1 and torch.get_num_threads() == 1 and _pools() == {1}
        assert thread_settings() == {"allotted": 1, "torch": 1, "pools": 1}
        assert allot_threads(0.5) == 1  # a fractional Ray allotment still runs one thread
    finally:
        allot_threads(usable_cpus())


def test_trainer_shares_the_cores_among_its_workers():
    try:
        assert set_cpu_threads(0, local_workers=usable_cpus()) == 1 and torch.get_num_threads() == 1 and _pools() == {1}
        assert set_cpu_threads(2) == 2 and torch.get_num_threads() == 2 and _pools() == {2}
    finally:
        allot_threads(usable_cpus())
