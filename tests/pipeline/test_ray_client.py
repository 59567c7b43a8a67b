"""``movid build --address ray://host:port``: a build through Ray Client against a real cluster on loopback
(its Ray Client server on a free port). Ray Client pickles the runtime env to send it to its server, so
movid's code must be shipped as folder paths (``pipeline.raystart.code_paths``): module objects failed with
"cannot pickle 'module' object". The shards are byte-identical to a local build's.

Slow (excluded from the default suite): the cluster takes ~15 s to start and a build through Ray Client
~1-2 min on 2 cores, most of it Ray Client's per-call round trips."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import local_build

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_client_address(ray_temp_dir):
    from ray._private.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    Path(get_ray_address_file(None)).parent.mkdir(parents=True, exist_ok=True)  # (see test_build_ray.py)
    port = _free_port()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "object_store_memory": 128 * 1024**2, "include_dashboard": False, "temp_dir": ray_temp_dir,
        "ray_client_server_port": port,
    })  # fmt: skip
    yield f"ray://127.0.0.1:{port}"
    cluster.shutdown()


def _shards(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for t in ("motion", "instruction", "quarantine", "bench")
            for p in sorted((out / t).rglob("*.parquet"))}  # fmt: skip


def test_build_through_ray_client_matches_local(clean_tree, ray_client_address, tmp_path):
    sets = ["plan.unit_size=8", "shard.max_rows=50"]
    cmd = [sys.executable, "-m", "movid", "build", "--source", f"humanml3d={clean_tree}", "--out", str(tmp_path / "rc"),
           "--address", ray_client_address, "--quiet", *[x for s in sets for x in ("--set", s)]]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cannot pickle" not in r.stderr
    assert "reconciliation: ok" in r.stdout
    local_build(clean_tree, tmp_path / "local", *sets)
    rc, local = _shards(tmp_path / "rc"), _shards(tmp_path / "local")
    assert len(rc) > 3 and rc == local
