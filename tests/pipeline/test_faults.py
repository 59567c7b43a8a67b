"""Fault tolerance, with real processes and real signals: a record that segfaults its worker ends in quarantine,
a full disk stops the build cleanly, a node lost mid-build loses nothing, and a seeded fault-injection suite
SIGKILLs drivers, Ray workers and a node at random moments — after each, the rerun (or the build itself) must
give shards byte-identical to an uninterrupted build, with reconciled counts.

One Ray cluster for the module: a head and a second node of one CPU each (``ray.cluster_utils.Cluster``).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import local_build

pytestmark = pytest.mark.ray
MOVID = [sys.executable, "-m", "movid"]
SETS = ("plan.unit_size=2", "shard.max_rows=50")  # 8 units of 2 records: kills land between and inside units
# Most builds here run without record-level validation: it is not what they test, and every fresh process (each
# rerun, each Ray worker replacing a dead one) would import great-expectations again. The node-loss test and the
# in-process merge test keep it on.
QUICK = ("validation.enabled=false",)
SEED = 20240611  # the fault suite's kill moments and victims
SURVIVED: Counter = Counter()  # faults this module's tests survived, by kind
KILLS = ("driver SIGKILL (local)", "driver SIGKILL (ray, while isolating)", "ray worker SIGKILL", "node killed")
NODE = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}


# --- fixtures and helpers ------------------------------------------------------------------------------------


class TwoNodes:
    """A real two-node Ray cluster on this machine; the second node can be killed and replaced."""

    def __init__(self, temp_dir: str):
        from ray._private.utils import get_ray_address_file
        from ray.cluster_utils import Cluster

        # Cluster records its address in Ray's default temp dir whatever temp_dir says; create it if missing
        Path(get_ray_address_file(None)).parent.mkdir(parents=True, exist_ok=True)
        # a dead node is noticed in about a second (the default takes ~15 s of missed health checks)
        health = {"health_check_period_ms": 300, "health_check_timeout_ms": 300, "health_check_failure_threshold": 3}
        self.cluster = Cluster(initialize_head=True, head_node_args=NODE | {
            "include_dashboard": False, "temp_dir": temp_dir, "_system_config": health})  # fmt: skip
        self.second = self.cluster.add_node(**NODE)
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    @staticmethod
    def raylet_pid(node) -> int:
        return node.all_processes["raylet"][0].process.pid

    def raylets(self) -> set[int]:
        return {self.raylet_pid(n) for n in self.cluster.list_all_nodes()}

    def kill_second(self) -> None:
        self.cluster.remove_node(self.second, allow_graceful=False)  # SIGKILLs its raylet and its workers
        self.second = None

    def replace_second(self) -> None:
        if self.second is None:
            self.second = self.cluster.add_node(**NODE)
            self.cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def ray_cluster(ray_temp_dir):
    nodes = TwoNodes(ray_temp_dir)
    yield nodes
    nodes.cluster.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    from pipeline.sample_data import write_sample_humanml3d

    root = tmp_path_factory.mktemp("faults") / "humanml3d"
    write_sample_humanml3d(root, n_motions=8, seed=11)  # 16 records (clips and mirrors) in 8 units
    return root


def _reference(tree: Path, out: Path, *extra: str) -> dict:
    """An uninterrupted build (local executor, in-process): its shards and its units."""
    local_build(tree, out, *SETS, *extra)
    units = sorted(p.name for p in (out / ".movid" / "units").iterdir() if p.name.startswith("humanml3d-"))
    return {"out": out, "shards": shards(out), "units": units}


@pytest.fixture(scope="module")
def reference(tree, tmp_path_factory) -> dict:
    return _reference(tree, tmp_path_factory.mktemp("reference") / "out")


@pytest.fixture(scope="module")
def quick_reference(tree, tmp_path_factory) -> dict:
    return _reference(tree, tmp_path_factory.mktemp("quick_reference") / "out", *QUICK)


def shards(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for t in ("motion", "video", "instruction", "quarantine")
            for p in sorted((out / t).rglob("*.parquet"))}  # fmt: skip


def rows(out: Path, table: str) -> list[dict]:
    files = sorted((out / table).rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def build_cmd(tree: Path, out: Path, *extra: str, address: str | None = None, executor: str = "ray") -> list[str]:
    cmd = MOVID + ["build", "--source", f"humanml3d={tree}", "--out", str(out), "--quiet", "--executor", executor]
    if address:
        cmd += ["--address", address]
    return cmd + [a for s in (*SETS, *extra) for a in ("--set", s)]


def run(cmd: list[str], env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ | (env or {}), timeout=timeout)


def assert_equals_reference(out: Path, reference: dict) -> None:
    """Nothing lost or duplicated: the reference's shards byte for byte, reconciled, unique motion ids."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reconciliation"]["ok"]
    got = shards(out)
    assert got.keys() == reference["shards"].keys()
    assert [k for k in got if got[k] != reference["shards"][k]] == []
    ids = [r["motion_id"] for r in rows(out, "motion")]
    assert len(ids) == len(set(ids))


def unit_workers(raylets: set[int], task: str = "run_unit") -> list[int]:
    """Ray workers of our cluster (children of its raylets) running ``task`` now: Ray titles a busy worker
    ``ray::<task name>`` (``ray::IDLE`` between tasks)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid in raylets and cmdline.startswith(f"ray::{task}".encode()):
            pids.append(int(proc.name))
    return sorted(pids)


def finished_units(out: Path) -> int:
    units = out / ".movid" / "units"
    return len(list(units.glob("humanml3d-*/stats.json"))) if units.is_dir() else 0


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the build ended before {what}: {proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def popen(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=os.environ | (env or {}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


# --- 1. a record that segfaults its worker ---------------------------------------------------------------------


def test_segfaulting_record_is_quarantined_and_the_rest_built(tree, quick_reference, ray_cluster, tmp_path):
    reference = quick_reference
    bad = (tree / "train.txt").read_text().split()[3]  # one record of the second train unit
    env = {"MOVID_FAULT_SEGFAULT_RECORD": bad}
    out = tmp_path / "a"
    r = run(build_cmd(tree, out, "ray.max_retries=1", *QUICK, address=ray_cluster.address), env)
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reconciliation"]["ok"]
    assert manifest["quarantine_reasons"] == {"worker_crashed": 1}
    [q] = rows(out, "quarantine")
    assert (q["record_id"], q["reason"], q["split"]) == (bad, "worker_crashed", "train")
    assert q["unit_id"] in reference["units"] and "." not in q["unit_id"]  # under its planned unit
    assert f"record {bad}: its worker process died of SIGSEGV (Segmentation fault)" in q["detail"], q["detail"]
    assert "string_at" in q["detail"]  # where it crashed, from the fault handler
    ingest = manifest["stages"]["ingest_humanml3d"]
    assert ingest["clips_quarantined"] == ingest["dropped_worker_crashed"] == 1
    # every other record: exactly the rows of the uninterrupted build (motion rows even in the same order)
    of_bad = lambda r: r["motion_id"] is not None and (r["motion_id"] == bad or r["motion_id"].startswith(bad + "_"))  # noqa: E731
    for table, key in (("motion", "motion_id"), ("instruction", "sample_id")):
        want = [r for r in rows(reference["out"], table) if not of_bad(r)]
        got = rows(out, table)
        assert sorted(got, key=lambda r: r[key]) == sorted(want, key=lambda r: r[key]), table
    assert [r["motion_id"] for r in rows(out, "motion")] == [
        r["motion_id"] for r in rows(reference["out"], "motion") if not of_bad(r)
    ]
    assert not list((out / ".movid" / "units").glob("*.0*")), "the single-record parts were merged and removed"
    SURVIVED["worker segfault"] += 1

    # determinism and resume: the same build, its driver SIGKILLed while the unit is being split, then rerun
    out_b = tmp_path / "b"
    cmd = build_cmd(tree, out_b, "ray.max_retries=1", *QUICK, address=ray_cluster.address)
    proc = popen(cmd, env | {"MOVID_FAULT_UNIT_DELAY_S": "0.3"})
    wait_for(lambda: any((out_b / ".movid" / "units").glob("*.0000[0-9]/stats.json")), proc, what="a finished part")
    proc.kill()
    proc.wait()
    assert not (out_b / "manifest.json").exists()
    r = run(cmd, env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert shards(out_b) == shards(out)
    SURVIVED["driver SIGKILL (ray, while isolating)"] += 1

    # the crash fixed (no more fault), `movid requeue --reason worker_crashed` gives the build that never crashed
    r = run(MOVID + ["requeue", str(out), "--reason", "worker_crashed", "--executor", "local", "--quiet"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert_equals_reference(out, reference)


def test_split_parts_merge_to_the_unit_and_counts_reconcile_for_every_source_kind(tmp_path):
    """No Ray: a unit run as single-record parts, one of them recorded as crashed, merges into exactly the
    unsplit unit's rows less that record — here finished by the local executor, as when a build that Ray was
    splitting is resumed locally; and a crashed record of each source kind balances the counts."""
    from collections import defaultdict

    from pipeline.config import load_config
    from pipeline.executors import LocalExecutor, merge_split_unit, write_crashed_record
    from pipeline.manifest import reconcile
    from pipeline.planner import WorkUnit, plan_build, split_unit
    from pipeline.records import AmassRow, VideoRow
    from pipeline.runstate import RunState
    from pipeline.sample_data import write_sample_humanml3d
    from pipeline.units import run_unit

    write_sample_humanml3d(tmp_path / "h", n_motions=3, seed=4)
    cfg = load_config(None, ["executor=local", "plan.unit_size=8"], [f"humanml3d={tmp_path / 'h'}"])
    unit = plan_build(cfg).units[0]
    parts = split_unit(unit)
    assert [p.unit_id for p in parts] == [f"{unit.unit_id}.{k:05d}" for k in range(len(unit.record_ids))]
    assert [p.record_ids for p in parts] == [(r,) for r in unit.record_ids] and split_unit(unit) == parts
    whole = run_unit(unit, cfg, str(tmp_path / "whole"))
    state = RunState(tmp_path / "split")
    for p in parts[:-1]:
        run_unit(p, cfg, str(state.out))
    write_crashed_record(state, parts[-1], cfg, f"record {parts[-1].record_ids[0]}: its worker process died")
    [merged] = LocalExecutor().run(run_unit, [unit], cfg, str(state.out), show_progress=False)
    assert merged["unit_id"] == unit.unit_id and not (state.unit_dir(parts[0].unit_id)).exists()
    assert merge_split_unit(unit, parts, cfg, str(state.out)) == merged == state.read_stats(unit.unit_id)
    bad = parts[-1].record_ids[0]

    def table(out, stats, name):
        files = [f for f in stats["files"] if f["table"] == name]
        return pa.concat_tables([pq.read_table(Path(out) / ".movid" / "units" / stats["unit_id"] / name / f["split"] /
                                               f["file"]) for f in files]).to_pylist()  # fmt: skip

    want = [r for r in table(tmp_path / "whole", whole, "motion") if r["motion_id"].split("_")[0] != bad]
    assert table(state.out, merged, "motion") == want
    [q] = table(state.out, merged, "quarantine")
    assert (q["record_id"], q["reason"], q["unit_id"]) == (bad, "worker_crashed", unit.unit_id)

    # one crashed record of each source kind: its ingest counters balance the manifest's checks
    amass_row = AmassRow("KIT_3_walk", "KIT/3/walk_poses.npz", 0, 100, "train", "test")
    video_row = VideoRow("v1", "clips/v1.mp4", ("a person waves",), "val", None, None, None, None, None, None)
    cases = [
        (WorkUnit("humanml3d-train-00000-x.00000", 0, "humanml3d", "/h", "train", ("000001",)), {"planned": 1}, 1),
        (WorkUnit("motionx-test-00000-x.00000", 0, "motionx", "/m", "test", ("humanml/1",)), {"planned": 1}, 1),
        (WorkUnit("amass-00000-x.00000", 0, "amass", "/a", "mixed", ("KIT_3_walk", "MKIT_3_walk"), (amass_row,)),
         {"planned": 2}, 2),
        (WorkUnit("video-00000-x.00000", 0, "video", "/v", "mixed", ("v1",), (video_row,)),
         {"videos_listed": 1, "videos_planned": 1}, 1),
    ]  # fmt: skip
    for k, (part, plan, n) in enumerate(cases):
        plan = {"listed": plan.get("planned", 0)} | plan
        stats = write_crashed_record(RunState(tmp_path / f"kind{k}"), part, cfg, "its worker process died")
        totals = defaultdict(Counter, {"plan": Counter(plan)})
        for stage, c in stats["stages"].items():
            totals[stage].update(c)
        quarantined = sum(f["rows"] for f in stats["files"] if f["table"] == "quarantine")
        checks = reconcile(totals, {"quarantine": quarantined})
        assert checks["ok"] and quarantined == n, (part.source_kind, checks)
        splits = pq.read_table(RunState(tmp_path / f"kind{k}").unit_dir(part.unit_id) / "quarantine" / "_" /
                               "00000.parquet").column("split").to_pylist()  # fmt: skip
        assert splits == {"amass": ["train", "test"], "video": ["val"]}.get(part.source_kind, [part.split])


# --- 2. a full disk ------------------------------------------------------------------------------------------


def _assert_stopped_cleanly(out: Path, stderr: str, unit_id: str | None = None) -> str:
    m = re.search(r"work unit (\S+) stopped: no space left on device", stderr)
    assert m, stderr[-3000:]
    assert unit_id is None or m.group(1) == unit_id
    assert "Traceback" not in stderr, stderr[-3000:]
    for table in ("motion", "video", "instruction", "quarantine"):
        assert not (out / table).exists(), f"a shard is visible in {out / table}"
    assert not (out / "manifest.json").exists()
    units = out / ".movid" / "units"
    assert not (units / m.group(1)).exists(), "the failing unit has a finished-unit marker"
    assert not list(units.glob(f".tmp-{m.group(1)}-*")), "the failing unit left its partial staging folder"
    return m.group(1)


def test_disk_full_stops_cleanly_and_a_rerun_completes(tree, quick_reference, ray_cluster, tmp_path):
    reference = quick_reference
    victim = reference["units"][3]
    out = tmp_path / "out"
    cmd = build_cmd(tree, out, *QUICK, address=ray_cluster.address)
    r = run(cmd, {"MOVID_FAULT_ENOSPC_UNIT": victim})
    assert r.returncode == 1
    _assert_stopped_cleanly(out, r.stderr, victim)
    r = run(cmd)  # space freed
    assert r.returncode == 0, r.stderr[-3000:]
    assert_equals_reference(out, reference)
    SURVIVED["disk full (ray, injected)"] += 1


def _userns_mounts() -> bool:
    """Whether this machine lets an unprivileged user mount a tmpfs in a user namespace (many CI runners and
    containers do not)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        try:
            r = subprocess.run(["unshare", "-Urm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs '{d}'"],
                               capture_output=True, timeout=10)  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return False
        return r.returncode == 0


@pytest.mark.skipif(not _userns_mounts(), reason="needs unprivileged user namespaces (unshare -Urm) for a tmpfs")
def test_disk_full_on_a_real_tiny_filesystem(tree, quick_reference, tmp_path):
    """A real full disk: OUT on a tmpfs too small for the build (mounted in a user namespace, no root needed),
    then grown, and the same command rerun."""
    reference = quick_reference
    size_kib = sum(len(b) for b in reference["shards"].values()) // 2 // 1024  # about half the units fit
    out, failed, done, logs = (tmp_path / n for n in ("out", "failed", "done", "logs"))
    for d in (out, failed, done, logs):
        d.mkdir()
    cmd = " ".join(f"'{a}'" for a in build_cmd(tree, out, *QUICK, executor="local"))
    script = f"""
        mount -t tmpfs -o size={size_kib}k tmpfs '{out}' || exit 90
        {cmd} >'{logs}/1.out' 2>'{logs}/1.err'; echo $? >'{logs}/1.rc'
        cp -a '{out}/.' '{failed}/'
        mount -o remount,size=256m '{out}' || exit 91
        {cmd} >'{logs}/2.out' 2>'{logs}/2.err'; echo $? >'{logs}/2.rc'
        cp -a '{out}/.' '{done}/'
    """
    r = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert (logs / "1.rc").read_text().strip() == "1", (logs / "1.err").read_text()[-3000:]
    _assert_stopped_cleanly(failed, (logs / "1.err").read_text())
    assert (logs / "2.rc").read_text().strip() == "0", (logs / "2.err").read_text()[-3000:]
    assert_equals_reference(done, reference)
    SURVIVED["disk full (real tmpfs)"] += 1


# --- 3. a node lost mid-build ------------------------------------------------------------------------------


def _build_losing_the_second_node(tree, ray_cluster, out: Path, min_done: int, *extra: str) -> None:
    ray_cluster.replace_second()
    second = TwoNodes.raylet_pid(ray_cluster.second)
    proc = popen(build_cmd(tree, out, *extra, address=ray_cluster.address), {"MOVID_FAULT_UNIT_DELAY_S": "0.4"})
    wait_for(lambda: finished_units(out) >= min_done and unit_workers({second}), proc, what="a unit on the node")
    ray_cluster.kill_second()
    output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output[-3000:]


def test_build_survives_losing_a_node(tree, reference, ray_cluster, tmp_path):
    _build_losing_the_second_node(tree, ray_cluster, tmp_path / "out", min_done=1)
    assert_equals_reference(tmp_path / "out", reference)
    SURVIVED["node killed"] += 1


# --- 4. the fault-injection suite ---------------------------------------------------------------------------


def test_fault_suite_driver_sigkills_local(tree, quick_reference, tmp_path):
    """The driver SIGKILLed at random moments of its life (start-up, plan, units, commit) and the same command
    rerun — a rerun that may itself be SIGKILLed, up to five kills in a row — until a rerun completes the build,
    which must then equal the uninterrupted build."""
    rng = random.Random(SEED)
    env = {"MOVID_FAULT_UNIT_DELAY_S": "0.08"}  # the units take ~1 s
    t0 = time.monotonic()  # an uninterrupted run first: how long this machine takes, so the kills span it all
    r = run(build_cmd(tree, tmp_path / "timed", *QUICK, executor="local"), env)
    assert r.returncode == 0, r.stderr[-3000:]
    lifetime = time.monotonic() - t0
    assert_equals_reference(tmp_path / "timed", quick_reference)
    kills = 0
    for attempt in range(40):
        if kills >= 13:
            break
        out = tmp_path / f"o{attempt}"
        cmd = build_cmd(tree, out, *QUICK, executor="local")
        in_a_row = 0
        while True:
            proc = popen(cmd, env)
            time.sleep(rng.uniform(0.05, 1.0) * lifetime)
            if proc.poll() is not None:  # it finished before the kill
                assert proc.returncode == 0, proc.communicate()[0][-3000:]
                break
            proc.kill()
            proc.wait()
            kills += 1
            in_a_row += 1
            if kills >= 13 or in_a_row == 5 or rng.random() < 0.4:
                r = run(cmd)  # the rerun that completes it
                assert r.returncode == 0, r.stderr[-3000:]
                break
        if in_a_row:
            assert_equals_reference(out, quick_reference)
    SURVIVED["driver SIGKILL (local)"] += kills
    assert kills == 13


def test_fault_suite_ray_worker_sigkills(tree, quick_reference, ray_cluster, tmp_path):
    """Ray workers running units SIGKILLed at random moments (three per build, at most as many as Ray's retries,
    so no unit has to be split): each killed unit is re-run by Ray and the build completes unchanged."""
    rng = random.Random(SEED + 1)
    ray_cluster.replace_second()
    kills = 0
    for b in range(4):
        if kills >= 6:
            break
        out = tmp_path / f"o{b}"
        proc = popen(build_cmd(tree, out, "ray.max_retries=3", *QUICK, address=ray_cluster.address),
                     {"MOVID_FAULT_UNIT_DELAY_S": "0.5"})  # fmt: skip
        in_this_build = 0
        deadline = time.monotonic() + 120
        while in_this_build < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.5))
            busy = unit_workers(ray_cluster.raylets())
            if not busy:  # start-up, or between units
                continue
            try:
                os.kill(rng.choice(busy), signal.SIGKILL)
            except ProcessLookupError:  # it finished its unit just now
                continue
            in_this_build += 1
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output[-3000:]
        assert_equals_reference(out, quick_reference)
        kills += in_this_build
    SURVIVED["ray worker SIGKILL"] += kills
    assert kills >= 6


def test_fault_suite_node_killed_at_a_random_moment(tree, quick_reference, ray_cluster, tmp_path):
    rng = random.Random(SEED + 2)
    _build_losing_the_second_node(tree, ray_cluster, tmp_path / "out", rng.randint(0, 3), *QUICK)
    assert_equals_reference(tmp_path / "out", quick_reference)
    SURVIVED["node killed"] += 1


def test_fault_suite_total(request):
    """At least 20 kills at random moments survived across this module (printed as a summary)."""
    ran = {i.name for i in request.session.items if i.module is request.module and i.name != request.node.name}
    needed = {n for n in dir(request.module) if n.startswith("test_fault_suite_") and n != request.node.name}
    if not needed <= ran:
        pytest.skip("the whole fault suite did not run")
    kills = sum(SURVIVED[k] for k in KILLS)
    with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
        print(f"\nfaults survived: {sum(SURVIVED.values())}, of which {kills} kills at random moments — "
              + ", ".join(f"{k} {v}" for k, v in sorted(SURVIVED.items())))  # fmt: skip
    assert kills >= 20, SURVIVED
