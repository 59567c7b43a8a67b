"""Annotator throughput and rate limiting against a loopback OpenAI-compatible server.

    .venv/bin/python bench/annotate.py [--requests 1600] [--latency 0.2] [--in-flight 64] [--repeats 5]

1. The server answers every request after ``--latency`` s; with ``--in-flight`` requests open the ideal
   is in-flight / latency requests/s (320 for 64 and 0.2 s). Goal: ≥ 90 % of it. Each figure is the median
   of ``--repeats`` runs (min–max shown): on 2 shared cores one run varies by ±3 %. Every run starts with
   an empty response cache; the process has answered before (imports done, connections open), as a Ray
   worker has after its first unit.
2. With ``requests_per_minute=600`` the achieved rate must be within 5 % of 10 requests/s and never above.
Prints requests/s, p50/p99 latency as the client sees it, and the per-request overhead (client latency
minus the server's).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory, mkdtemp

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import AnnotatorConfig  # noqa: E402
from stages.annotate import ClipRequest  # noqa: E402
from stages.llm_client import OpenAIAnnotator  # noqa: E402
from tests.llm_server import FakeLLM  # noqa: E402


class TimedAnnotator(OpenAIAnnotator):
    """Records when each request starts and how long it takes, as the client sees it."""

    starts: list[float]
    latencies: list[float]

    async def _call(self, client, limit, messages, usage):
        t0 = time.perf_counter()
        result = await super()._call(client, limit, messages, usage)
        self.latencies.append(time.perf_counter() - t0)
        return result


class ServerProcess:
    """The loopback server in a process of its own, so it does not share the client's interpreter."""

    def __init__(self, latency: float):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", "tests.llm_server", "--latency", str(latency)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.base_url = self.proc.stdout.readline().strip()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


_SCRATCH: TemporaryDirectory | None = None


def _empty_cache_dir() -> str:
    """A new, empty response-cache folder. All are removed when the process ends, not between runs: deleting
    thousands of files makes the disk busy (discards, journal) while the next run is measured."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = TemporaryDirectory(prefix="movid-bench-")
    return mkdtemp(dir=_SCRATCH.name)


def run(server, n: int, in_flight: int, per_minute: float | None, tag: str):
    os.environ["MOVID_BENCH_KEY"] = "sk-bench"
    cfg = AnnotatorConfig(backend="openai", base_url=server.base_url, model="bench", api_key_env="MOVID_BENCH_KEY",
                          max_in_flight=in_flight, requests_per_minute=per_minute, timeout_s=30)  # fmt: skip
    ann = TimedAnnotator(cfg, "bench@0", _empty_cache_dir())
    ann.latencies = []
    requests = [ClipRequest(f"{tag}{i}", "train", f"{tag} clip {i}\ntravel: forward (1.0 m)\njumps: 0", {})
                for i in range(n)]  # fmt: skip
    t0 = time.perf_counter()
    results = ann.answer_all(requests)
    elapsed = time.perf_counter() - t0
    assert all(r.error is None for r in results)
    return elapsed, np.array(ann.latencies)


def _worker(args) -> tuple[float, float]:
    base_url, n, in_flight, tag = args

    class Server:  # the address of the shared server process
        pass

    server = Server()
    server.base_url = base_url
    run(server, in_flight, in_flight, None, tag + "warm")  # imports and connections, as a running worker has
    barrier.wait()  # start together
    t0 = time.time()
    run(server, n, in_flight, None, tag)
    return t0, time.time()


def _init(b):
    global barrier
    barrier = b


def run_workers(server, n: int, workers: int, in_flight: int, repeats: int) -> list[float]:
    """``workers`` processes (as Ray workers would be), each with ``in_flight`` requests open; the span of
    each of ``repeats`` runs, the processes kept between runs."""
    from multiprocessing import get_context

    ctx = get_context("spawn")
    spans = []
    with ctx.Pool(workers, initializer=_init, initargs=(ctx.Barrier(workers),)) as pool:
        for r in range(repeats):
            times = pool.map(_worker, [(server.base_url, n // workers, in_flight, f"r{r}w{k}-") for k in range(workers)])
            spans.append(max(e for _, e in times) - min(s for s, _ in times))
    return spans


def _summary(rates: list[float], ideal: float) -> str:
    med = float(np.median(rates))
    return (f"{med:.1f} requests/s = {100 * med / ideal:.1f} % of the ideal {ideal:.0f} "
            f"(runs {100 * min(rates) / ideal:.1f}–{100 * max(rates) / ideal:.1f} %)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1600)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    ideal = args.in_flight / args.latency
    workers = os.cpu_count() or 1
    with ServerProcess(args.latency) as server:
        run(server, args.in_flight, args.in_flight, None, "warm")
        rates, lats = [], []
        for r in range(args.repeats):
            elapsed, lat = run(server, args.requests, args.in_flight, None, f"t{r}-")
            rates.append(args.requests / elapsed)
            lats.append(lat)
        spans = run_workers(server, args.requests, workers, args.in_flight // workers, args.repeats)
    lat = np.concatenate(lats)
    print(f"throughput: {args.requests} requests, {args.in_flight} in flight, server latency {args.latency * 1000:.0f} ms, "
          f"median of {args.repeats} runs")
    print(f"  one worker process:  {_summary(rates, ideal)} (goal ≥ 90 %)")
    wrates = [args.requests // workers * workers / s for s in spans]
    print(f"  {workers} worker processes × {args.in_flight // workers} in flight (as on Ray): {_summary(wrates, ideal)}")
    print(f"  client latency p50 {1000 * np.percentile(lat, 50):.1f} ms, p99 {1000 * np.percentile(lat, 99):.1f} ms; "
          f"overhead per request p50 {1000 * (np.percentile(lat, 50) - args.latency):.1f} ms")  # fmt: skip
    n_limited = 120
    with FakeLLM(latency=0.01) as server:
        elapsed, _ = run(server, n_limited, 16, 600, "r")
    achieved = (n_limited - 1) / elapsed * 60  # n starts span n - 1 intervals
    print(f"rate limit 600/min: {n_limited} requests in {elapsed:.2f} s = {achieved:.0f}/min "
          f"({100 * (achieved - 600) / 600:+.1f} %, goal within 5 % and never above)")
    print(f"reproduce: .venv/bin/python bench/annotate.py --requests {args.requests} --latency {args.latency} "
          f"--in-flight {args.in_flight} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
