"""Builds on a real Ray cluster (started once for this module), driven through the ``movid`` CLI as a
user would: byte-identical shards, and resume after the driver is SIGKILLed mid-build."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import local_build

pytestmark = pytest.mark.ray
MOVID = [sys.executable, "-m", "movid"]


@pytest.fixture(scope="module")
def ray_address(ray_temp_dir):
    from ray._private.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    # Cluster records its address in Ray's default temp dir (/tmp/ray) whatever temp_dir says; on a machine
    # where no Ray ran yet that folder is missing and the write fails
    Path(get_ray_address_file(None)).parent.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "object_store_memory": 128 * 1024**2, "include_dashboard": False,
        "temp_dir": ray_temp_dir,
    })  # fmt: skip
    yield cluster.address
    cluster.shutdown()


def _shards(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for t in ("motion", "instruction", "quarantine")
            for p in sorted((out / t).rglob("*.parquet"))}  # fmt: skip


def _cli_build(source, out, address, *extra, env=None, **kw):
    cmd = MOVID + ["build", "--source", f"humanml3d={source}", "--out", str(out), "--address", address, "--quiet",
                   "--set", "plan.unit_size=4", "--set", "shard.max_rows=50", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)


def test_builds_are_byte_identical_across_runs_and_executors(broken_tree, ray_address, tmp_path):
    for name in ("a", "b"):
        r = _cli_build(broken_tree, tmp_path / name, ray_address)
        assert r.returncode == 0, r.stderr
    local_build(broken_tree, tmp_path / "local", "plan.unit_size=4", "shard.max_rows=50")
    a, b, local = (_shards(tmp_path / n) for n in ("a", "b", "local"))
    assert len(a) > 10 and a == b == local


def test_resume_after_driver_sigkill(clean_tree, ray_address, tmp_path):
    reference = tmp_path / "reference"
    n_units = local_build(clean_tree, reference, "plan.unit_size=4", "shard.max_rows=50")["units"]["total"]
    out = tmp_path / "killed"
    env = os.environ | {"MOVID_FAULT_UNIT_DELAY_S": "0.5"}  # slow units so the kill lands mid-build
    cmd_args = (clean_tree, out, ray_address)
    proc = subprocess.Popen(
        MOVID + ["build", "--source", f"humanml3d={clean_tree}", "--out", str(out), "--address", ray_address,
                 "--quiet", "--set", "plan.unit_size=4", "--set", "shard.max_rows=50"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    units = out / ".movid" / "units"
    deadline = time.monotonic() + 120
    done: dict[Path, int] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        done = {p: p.stat().st_mtime_ns for p in units.glob("humanml3d-*/stats.json")} if units.is_dir() else {}
        if len(done) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"build ended before the kill: {proc.stdout.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    assert 4 <= len(done) < n_units  # really midway

    r = _cli_build(*cmd_args)  # the same command again
    assert r.returncode == 0, r.stderr
    ran, skipped = map(int, re.search(r"(\d+) work unit\(s\) run, (\d+) already done", r.stdout).groups())
    assert ran + skipped == n_units and skipped >= len(done) and ran >= 1
    for stats, mtime in done.items():
        assert stats.stat().st_mtime_ns == mtime, f"{stats.parent.name} was redone"
    assert _shards(out) == _shards(reference)
    ids = [i for f in sorted((out / "motion").rglob("*.parquet")) for i in pq.read_table(f).column("motion_id").to_pylist()]
    assert len(ids) == len(set(ids))


def test_smpl_sources_on_ray_match_local(ray_address, tmp_path):
    r = subprocess.run(MOVID + ["sample-data", str(tmp_path / "d"), "--motions", "2", "--smpl", "6"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = tmp_path / "d"
    sets = [f"smpl.model_dir={d / 'body_models'}", f"amass.texts={d / 'amass' / 'texts'}", "plan.unit_size=4"]
    sources = [f"amass={d / 'amass'}", f"motionx={d / 'motionx'}"]
    cmd = MOVID + ["build", "--out", str(tmp_path / "ray"), "--address", ray_address, "--quiet"]
    cmd += [a for s in sources for a in ("--source", s)] + [a for s in sets for a in ("--set", s)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    local_build(None, tmp_path / "local", *sets, sources=sources)
    ray_shards, local_shards = _shards(tmp_path / "ray"), _shards(tmp_path / "local")
    assert len(ray_shards) >= 6 and ray_shards == local_shards


def test_rate_limit_is_shared_by_all_workers(ray_address, tmp_path):
    import numpy as np

    from pipeline.sample_data import write_sample_humanml3d
    from tests.llm_server import FakeLLM

    write_sample_humanml3d(tmp_path / "h", n_motions=6, seed=9)
    env = os.environ | {"MOVID_TEST_KEY": "sk-test"}
    with FakeLLM(latency=0.05) as server:
        sets = ["annotator.backend=openai", f"annotator.base_url={server.base_url}", "annotator.api_key_env=MOVID_TEST_KEY",
                f"annotator.cache_dir={tmp_path / 'cache'}", "annotator.requests_per_minute=300", "plan.unit_size=2",
                "ray.forward_env=[MOVID_TEST_KEY]"]  # the cluster's workers do not inherit our environment  # fmt: skip
        cmd = MOVID + ["build", "--source", f"humanml3d={tmp_path / 'h'}", "--out", str(tmp_path / "o"), "--address",
                       ray_address, "--quiet"] + [a for s in sets for a in ("--set", s)]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        arrivals = np.sort(np.array(server.arrivals))
    assert len(arrivals) >= 8
    # 300/min = one start every 0.2 s across the whole cluster, whichever worker sends it: any k consecutive
    # requests span at least k × 0.2 s, less the jitter of delivering one request, which does not add up over
    # k (up to ~0.1 s on a loaded 2-core machine: the server thread shares the CPU with the workers); two
    # workers limiting themselves separately would send pairs at once, and half the span over all of them
    for k in range(1, len(arrivals)):
        assert (arrivals[k:] - arrivals[:-k]).min() >= 0.2 * k - 0.12, k


def test_ray_tasks_run_with_the_threads_of_their_cpu(clean_tree, ray_address, tmp_path):
    """A unit asks Ray for one CPU and runs one intra-op thread, even where the workers' environment says
    otherwise (OMP_NUM_THREADS=2 forwarded: OpenBLAS and torch would start two threads each)."""
    env = os.environ | {"OMP_NUM_THREADS": "2"}
    r = _cli_build(clean_tree, tmp_path / "out", ray_address, "--set", "ray.forward_env=[OMP_NUM_THREADS]", env=env)
    assert r.returncode == 0, r.stderr
    import json

    threads = json.loads((tmp_path / "out" / "manifest.json").read_text())["threads"]
    assert threads["allotted"] == [1] and threads["pools"] == [1], threads
    assert set(threads["torch"]) <= {None, 1}, threads
