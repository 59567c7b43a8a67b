"""``movid build`` with ``annotator.backend=openai-batch`` against a loopback server that speaks the files +
batches protocol (``tests/llm_batch_server.py``): real HTTP through the openai client, no mocks."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.sample_data import write_sample_humanml3d
from tests.conftest import local_build
from tests.llm_batch_server import FakeBatchLLM
from tests.llm_server import FakeLLM
from tests.redteam.harness import assert_no_secret

KEY = "sk-movid-batch-test-DO-NOT-LEAK-71c0e2"


@pytest.fixture(autouse=True)
def _key(monkeypatch):  # the key the annotator reads (the killed build's subprocess gets it in its env)
    monkeypatch.setenv("MOVID_TEST_KEY", KEY)


def _sets(server, cache, backend="openai-batch", *extra):
    return (f"annotator.backend={backend}", f"annotator.base_url={server.base_url}", "annotator.model=gpt-test",
            "annotator.api_key_env=MOVID_TEST_KEY", f"annotator.cache_dir={cache}", "annotator.backoff_base_s=0.01",
            "annotator.timeout_s=5", "annotator.tasks=[caption, qa]", "annotator.batch_poll_s=0.02",
            "plan.unit_size=3", "annotator.price_per_1k_prompt_tokens=1.0", *extra)  # fmt: skip


def _shards(out: Path) -> dict[str, bytes]:
    """Every shard the manifest lists, by path: bytes."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {s["path"]: (out / s["path"]).read_bytes() for s in manifest["shards"]}


def _unit_tasks(out: Path) -> int:
    return len(list((out / ".movid" / "batches").glob("*.json")))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small tree and its synchronous build's manifest and shards: what every batch build must equal."""
    tmp = tmp_path_factory.mktemp("batch")
    write_sample_humanml3d(tmp / "humanml3d", n_motions=6, seed=9)
    with pytest.MonkeyPatch.context() as mp, FakeLLM() as server:
        mp.setenv("MOVID_TEST_KEY", KEY)
        m = local_build(tmp / "humanml3d", tmp / "out", *_sets(server, tmp / "cache", "openai"))
    return SimpleNamespace(tree=tmp / "humanml3d", manifest=m, shards=_shards(tmp / "out"))


def test_batch_build_equals_the_synchronous_build(data, tmp_path):
    with FakeBatchLLM(in_progress_polls=3) as server:
        m = local_build(data.tree, tmp_path / "out", *_sets(server, tmp_path / "cache"))
        assert server.requests == 0 and server.batch_lines > 0  # every answer came through a batch
        assert server.polls["in_progress"] >= 3 * len(server.batches) and server.polls["finalizing"] > 0
        assert len(server.uploads) == len(server.batches) == _unit_tasks(tmp_path / "out")
        lines = [json.loads(x) for f in server.files.values() if f["purpose"] == "batch" for x in f["data"].splitlines()]
        assert {(x["method"], x["url"]) for x in lines} == {("POST", "/v1/chat/completions")}
        # the same cache keys: a synchronous build over this cache asks nothing
        again = local_build(data.tree, tmp_path / "again", *_sets(server, tmp_path / "cache", "openai"))
        assert server.requests == 0 and again["annotator"]["cache_hits"] == m["annotator"]["cache_hits"] + server.batch_lines
    assert _shards(tmp_path / "out") == data.shards == _shards(tmp_path / "again")
    a, s = m["annotator"], data.manifest["annotator"]
    assert m["reconciliation"]["ok"] and a["backend"] == "openai-batch" and a["batch_requests"] == a["requests"] > 0
    assert a["prompt_tokens"] == s["prompt_tokens"] and a["cost_usd"] == pytest.approx(s["cost_usd"] / 2)
    assert_no_secret(tmp_path / "out", KEY)  # the batch state holds ids and hashes: no key anywhere
    state = json.loads(next((tmp_path / "out" / ".movid" / "batches").glob("*.json")).read_text())
    assert set(state["jobs"][0]) == {"name", "keys", "file_id", "batch_id"}


def test_units_in_parallel_have_their_batches_in_flight_together(data, tmp_path):
    """One batch per unit task, waited for by its unit: units that run at once have their batches in flight at
    once (here two forked local workers; on Ray, ``ray.max_in_flight`` units)."""
    with FakeBatchLLM() as server:
        server.release.clear()
        build = threading.Thread(target=lambda: built.append(local_build(
            data.tree, tmp_path / "out", *_sets(server, tmp_path / "cache", "openai-batch", "local.workers=2"))))  # fmt: skip
        built: list = []
        build.start()
        deadline = time.monotonic() + 60
        while len(server.batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        in_flight = len(server.batches)  # none can end while released is clear
        server.release.set()
        build.join(120)
    assert in_flight >= 2 and built and built[0]["reconciliation"]["ok"]
    assert _shards(tmp_path / "out") == data.shards


@pytest.mark.parametrize("retry", ["sync", "batch", "none"])
def test_failed_lines_are_retried_or_quarantined(data, tmp_path, retry):
    faults = iter([{"error": {"code": "server_error", "message": "boom"}},
                   {"response": {"status_code": 500, "body": {"error": {"message": "internal"}}}},
                   {"response": {"status_code": 400, "body": {"error": {"message": "bad"}}}},
                   "Sure! Here is the answer: {"])  # fmt: skip

    def line_fault(prompt, attempt):  # the first asking of the first four prompts fails, each its own way
        return next(faults, None) if attempt == 1 else None

    with FakeBatchLLM(line_fault=line_fault) as server:
        m = local_build(data.tree, tmp_path / "out", *_sets(server, tmp_path / "cache", "openai-batch",
                                                        f"annotator.batch_retry={retry}"))  # fmt: skip
    assert m["reconciliation"]["ok"]
    if retry == "none":
        reasons = m["quarantine_reasons"]
        assert reasons["api_error"] == 2 and reasons["api_unavailable"] == 1 and reasons["invalid_answer"] == 1
        return
    assert server.requests == (4 if retry == "sync" else 0)  # the four failed lines, asked again
    tasks = _unit_tasks(tmp_path / "out")
    assert len(server.batches) == tasks if retry == "sync" else tasks < len(server.batches) <= tasks + 4
    assert m["annotator"]["retries"] == 4 and "api_error" not in m["quarantine_reasons"]
    assert _shards(tmp_path / "out") == data.shards


@pytest.mark.parametrize("retry", ["batch", "none"])
def test_an_expired_batch_is_answered_in_the_end_or_quarantined(data, tmp_path, retry):
    with FakeBatchLLM(expire=1) as server:
        m = local_build(data.tree, tmp_path / "out", *_sets(server, tmp_path / "cache", "openai-batch",
                                                             f"annotator.batch_retry={retry}"))  # fmt: skip
        expired = next(b for b in server.batches.values() if b["status"] == "expired")
        assert expired["output_file_id"] and expired["error_file_id"]  # half answered, half expired
    assert server.polls["expired"] == 1 and m["reconciliation"]["ok"]
    if retry == "none":
        left = expired["request_counts"]["failed"]
        assert left > 0 and m["quarantine_reasons"] == {"batch_expired": left}
        return
    assert len(server.batches) == _unit_tasks(tmp_path / "out") + 1 and _shards(tmp_path / "out") == data.shards


def test_a_failed_batch_stops_the_build_and_a_rerun_submits_it_again(data, tmp_path):
    from pipeline.executors import ExecutorError

    with FakeBatchLLM(fail=1) as server:
        sets = _sets(server, tmp_path / "cache")
        with pytest.raises(ExecutorError, match="failed: Enqueued token limit reached"):
            local_build(data.tree, tmp_path / "out", *sets)
        assert server.requests == 0 and server.batch_lines == 0  # nothing asked again at the full price
        m = local_build(data.tree, tmp_path / "out", *sets)
    assert len(server.batches) == _unit_tasks(tmp_path / "out") + 1 and server.requests == 0
    assert m["reconciliation"]["ok"] and _shards(tmp_path / "out") == data.shards


def test_an_id_that_quotes_the_key_is_never_recorded(data, tmp_path):
    from pipeline.executors import ExecutorError

    with FakeBatchLLM(id_prefix=f"batch-{KEY}-") as server:
        with pytest.raises(ExecutorError, match="an id that is not one"):
            local_build(data.tree, tmp_path / "out", *_sets(server, tmp_path / "cache"))
    assert_no_secret(tmp_path / "out", KEY)


@pytest.mark.parametrize("ids_lost", [False, True])
def test_killed_while_a_batch_runs_the_rerun_submits_nothing_again(data, tmp_path, ids_lost):
    """``ids_lost``: as if the kill had come between the upload (or the batch's creation) and the write of its
    id — the rerun finds the file by its name and the batch by its input file on the server."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "movid", "build", "--source", f"humanml3d={data.tree}", "--out", str(out),
           "--executor", "local", "--quiet"]  # fmt: skip
    env = os.environ | {"MOVID_TEST_KEY": KEY}
    with FakeBatchLLM() as server:
        server.release.clear()  # batches stay in progress
        cmd += [a for s in _sets(server, tmp_path / "cache") for a in ("--set", s)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not server.polls["in_progress"] and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None and server.polls["in_progress"], "no batch was in progress before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        submitted = len(server.uploads)
        assert submitted == len(server.batches) >= 1
        for path in (out / ".movid" / "batches").glob("*.json") if ids_lost else ():
            state = json.loads(path.read_text())
            path.write_text(json.dumps({"jobs": [{"name": j["name"], "keys": j["keys"]} for j in state["jobs"]]}))
        server.release.set()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    # one upload and one batch per unit task, the one submitted before the kill included
    assert len(server.uploads) == len(set(server.uploads)) == len(server.batches) == _unit_tasks(out)
    assert server.requests == 0 and max(server.by_prompt.values()) == 1  # no request asked twice
    assert _shards(out) == data.shards


def test_dry_run_shows_the_batch_price(data, tmp_path, capsys):
    from pipeline.cli import main

    with FakeBatchLLM() as server:
        args = ["build", "--dry-run", "--source", f"humanml3d={data.tree}", "--out", str(tmp_path / "out"), "--executor",
                "local"] + [a for s in _sets(server, tmp_path / "cache") for a in ("--set", s)]  # fmt: skip
        assert main(args) == 0
        assert server.requests == 0 and not server.uploads
    text = capsys.readouterr().out
    batch, sync = map(float, re.search(r"~\$([\d.]+) at the batch price \(synchronous ~\$([\d.]+)\)", text).groups())
    assert sync > 0 and batch == pytest.approx(sync / 2, abs=0.01)


def test_config_bounds(data):
    from pipeline.config import load_config
    from schemas.config_schema import ConfigError

    for bad in ("annotator.batch_retry=later", "annotator.batch_poll_s=0", "annotator.batch_discount=1.5",
                "annotator.batch_max_wait_s=-1"):  # fmt: skip
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load_config(None, [bad], [f"humanml3d={data.tree}"])
