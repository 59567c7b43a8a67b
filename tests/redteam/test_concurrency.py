"""Red-team corpus, concurrency (issue 16): two runs on one ``OUT`` never mix. A second ``movid build`` (or
``build --overwrite`` with another seed, ``validate``, ``requeue``) on an ``OUT`` that a build is writing is
refused at once — exit 2, one line naming the first run's pid and host — or, with ``--wait``, waits; the shards
left in ``OUT`` are byte for byte those of a clean build of the config that won. A SIGKILLed build leaves no
lock that blocks its resume.

Real processes (``python -m movid``, local executor); ``MOVID_FAULT_UNIT_DELAY_S`` makes the first build
slow enough for the second to start while it runs. Whether the second really started while the first held
``OUT`` is checked, not assumed: a scenario that did not overlap (a machine too loaded to start the second
process in time) is run again with a longer delay.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.shards import file_sha256
from tests.redteam.harness import CliResult, Sandbox, assert_one_line_error, secret_env

# (no great-expectations suites: they cost seconds a process and nothing here is about them)
CONFIG = ("plan.unit_size=2", "validation.enabled=false")
SETS = ("--executor", "local", "--quiet", *(a for c in CONFIG for a in ("--set", c)))
TABLES = ("motion", "video", "instruction", "quarantine", "bench")
DELAYS = (1.0, 3.0, 8.0)  # seconds per unit of the slow build; a longer one only when a run did not overlap


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """The source tree, and the shards of clean builds of it with seed 0 and seed 1 (each in its own folder)."""
    from pipeline.sample_data import write_sample_humanml3d
    from tests.conftest import local_build

    root = tmp_path_factory.mktemp("concurrency")
    src = root / "humanml3d"
    write_sample_humanml3d(src, n_motions=3, seed=4)
    for seed in (0, 1):
        local_build(src, root / f"ref-seed{seed}", *CONFIG, f"seed={seed}")
    return src, {seed: shards(root / f"ref-seed{seed}") for seed in (0, 1)}, root


def shards(out: Path) -> dict[str, str]:
    """sha256 of every file in the table folders (what `datasets` would read), by path."""
    return {p.relative_to(out).as_posix(): file_sha256(p) for t in TABLES for p in sorted((out / t).rglob("*"))
            if p.is_file()}  # fmt: skip


def start(src: Path, out: Path, *extra: str, delay: float = 0.0, command: str = "build") -> subprocess.Popen:
    env = secret_env(**({"MOVID_FAULT_UNIT_DELAY_S": str(delay)} if delay else {}))
    args = ["build", "--source", f"humanml3d={src}", "--out", str(out), *SETS] if command == "build" else [command, str(out)]
    return subprocess.Popen([sys.executable, "-m", "movid", *args, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def finish(proc: subprocess.Popen) -> CliResult:
    stdout, stderr = proc.communicate(timeout=600)
    return CliResult(proc.returncode, stdout, stderr)


def wait_until_holding(proc: subprocess.Popen, out: Path) -> None:
    """Until ``proc`` holds ``OUT``'s lock and has planned (its units are sleeping)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, finish(proc)
        try:
            holder = json.loads((out / ".movid.lock").read_text() or "null")
        except (OSError, ValueError):
            holder = None
        if holder and holder["pid"] == proc.pid and (out / ".movid" / "units" / "plan" / "stats.json").is_file():
            return
        time.sleep(0.05)
    raise AssertionError("the first build never took the lock")


def refused_by(res: CliResult, holder: subprocess.Popen, command: str = "movid build") -> None:
    assert_one_line_error(res, "is in use by another movid run", f"{command} (pid {holder.pid} on {socket.gethostname()}",
                          "--wait")  # fmt: skip


def overlapping(scenario):
    """Run ``scenario(delay)`` until its runs overlapped (it returns False when they did not)."""
    for delay in DELAYS:
        if scenario(delay) is not False:
            return
    pytest.fail(f"the runs never overlapped, even with {DELAYS[-1]} s per unit")


def _case(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.rmtree(out, ignore_errors=True)
    return out


def test_overwrite_with_another_seed_while_a_build_runs_is_refused(tmp_path, refs):
    """Order 1: `build` first, then `build --overwrite --set seed=1`."""
    src, ref, _ = refs

    def scenario(delay):
        out = _case(tmp_path, f"out-{delay}")
        before = Sandbox(tmp_path, out).snapshot()
        first = start(src, out, delay=delay)
        wait_until_holding(first, out)
        second = finish(start(src, out, "--overwrite", "--set", "seed=1"))
        if first.poll() is not None:
            finish(first)
            return False
        refused_by(second, first)
        res = finish(first)
        assert res.rc == 0, res.stderr
        manifest = Sandbox(tmp_path, out).check_build(out, before, stderr=res.stderr)
        assert manifest["config"]["seed"] == 0 and shards(out) == ref[0]

    overlapping(scenario)


def test_a_build_while_an_overwrite_runs_is_refused_and_so_are_validate_and_requeue(tmp_path, refs):
    """Order 2: `build --overwrite --set seed=1` (over a finished seed-0 build) first, then `build`; `validate`
    and `requeue` on the same OUT meanwhile are refused too."""
    src, ref, root = refs

    def scenario(delay):
        out = _case(tmp_path, f"out-{delay}")
        shutil.copytree(root / "ref-seed0", out, symlinks=True)
        before = Sandbox(tmp_path, out).snapshot()
        first = start(src, out, "--overwrite", "--set", "seed=1", delay=delay)
        wait_until_holding(first, out)
        others = [start(src, out), start(src, out, command="validate"), start(src, out, command="requeue")]
        others = [finish(p) for p in others]
        if first.poll() is not None:
            finish(first)
            return False
        for res in others:
            refused_by(res, first)
        res = finish(first)
        assert res.rc == 0, res.stderr
        manifest = Sandbox(tmp_path, out).check_build(out, before, stderr=res.stderr)
        assert manifest["config"]["seed"] == 1 and shards(out) == ref[1]
        assert not (out / "validation" / "report.json").exists()  # the refused validate wrote nothing

    overlapping(scenario)


def test_build_and_overwrite_started_together(tmp_path, refs):
    """Both at once, no order imposed: whichever gets OUT first wins, the other is refused (or, had they not
    overlapped, runs after it); the shards are those of a clean build of the config that won."""
    src, ref, _ = refs
    out = tmp_path / "out"
    before = Sandbox(tmp_path, out).snapshot()
    plain, over = start(src, out, delay=DELAYS[0]), start(src, out, "--overwrite", "--set", "seed=1", delay=DELAYS[0])
    runs = {0: (plain, finish(plain)), 1: (over, finish(over))}
    for seed, (_, res) in runs.items():
        assert res.rc in (0, 2) and "Traceback" not in res.stderr, (seed, res.stderr)
    winners = [seed for seed, (_, res) in runs.items() if res.rc == 0]
    assert winners, "neither build finished"
    manifest = Sandbox(tmp_path, out).check_build(out, before, stderr=runs[winners[-1]][1].stderr)
    final = manifest["config"]["seed"]
    assert final in winners and shards(out) == ref[final]
    if len(winners) == 1:
        loser = runs[1 - final][1]
        assert "is in use by another movid run" in loser.stderr or "holds a different build" in loser.stderr


def test_overwrite_with_wait_waits_then_replaces(tmp_path, refs):
    src, ref, _ = refs

    def scenario(delay):
        out = _case(tmp_path, f"out-{delay}")
        before = Sandbox(tmp_path, out).snapshot()
        first = start(src, out, delay=delay)
        wait_until_holding(first, out)
        second = start(src, out, "--overwrite", "--set", "seed=1", "--wait")
        res2 = finish(second)
        overlapped = f"waiting for movid build (pid {first.pid}" in res2.stderr
        res1 = finish(first)
        if not overlapped:
            return False
        assert res1.rc == 0 and res2.rc == 0, (res1.stderr, res2.stderr)
        manifest = Sandbox(tmp_path, out).check_build(out, before, stderr=res2.stderr)
        assert manifest["config"]["seed"] == 1 and shards(out) == ref[1]

    overlapping(scenario)


def test_two_identical_builds_at_once(tmp_path, refs):
    """One is refused (or, had they not overlapped, finds the build done); neither trips on the other's files."""
    src, ref, _ = refs
    out = tmp_path / "out"
    before = Sandbox(tmp_path, out).snapshot()
    procs = [start(src, out, delay=DELAYS[0]) for _ in range(2)]
    results = [finish(p) for p in procs]
    for res in results:
        assert "Traceback" not in res.stderr, res.stderr
    assert sorted(r.rc for r in results) in ([0, 2], [0, 0]), [(r.rc, r.stderr) for r in results]
    if sorted(r.rc for r in results) == [0, 2]:
        winner = procs[[r.rc for r in results].index(0)]
        refused_by(results[[r.rc for r in results].index(2)], winner)
    else:
        assert any("0 work unit(s) run" in r.stdout for r in results)
    Sandbox(tmp_path, out).check_build(out, before)
    assert shards(out) == ref[0]


def test_a_sigkilled_build_leaves_no_lock_that_blocks_its_resume(tmp_path, refs):
    src, ref, _ = refs
    out = tmp_path / "out"
    before = Sandbox(tmp_path, out).snapshot()
    first = start(src, out, delay=DELAYS[1])
    wait_until_holding(first, out)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL and (out / ".movid.lock").is_file()
    res = finish(start(src, out))  # the same command, at once
    assert res.rc == 0, res.stderr
    Sandbox(tmp_path, out).check_build(out, before, stderr=res.stderr)
    assert shards(out) == ref[0]


def test_the_lock_names_its_holder_and_binds_within_one_process(tmp_path):
    """``flock`` belongs to the open file: a second taker in the same process is refused too (a POSIX record
    lock would let it through), and the details are cleared when the holder lets go."""
    from pipeline.runstate import OutLocked, lock_out

    out = tmp_path / "out"
    with lock_out(out, "movid build", create=True):
        info = json.loads((out / ".movid.lock").read_text())
        assert (info["command"], info["pid"], info["host"]) == ("movid build", os.getpid(), socket.gethostname())
        with pytest.raises(OutLocked, match=rf"in use by another movid run: movid build \(pid {os.getpid()} on "):
            with lock_out(out, "movid build", create=True):
                pass
    assert (out / ".movid.lock").read_text() == ""
    with lock_out(out, "movid build", create=True):  # free again
        pass
