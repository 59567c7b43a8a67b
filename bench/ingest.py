"""Ingest + write throughput: ``movid build`` against a bare single-process floor, side by side.

    .venv/bin/python bench/ingest.py [--motions 5000] [--executor ray,local:0] [--rounds 3] [--workdir bench_out]
    .venv/bin/python bench/ingest.py --quick      # make bench-check: 1,500 motions, local executor, one round

``--executor``: a comma-separated list, each built in every round — ``ray`` (a private local Ray),
``local`` (one process, in order) or ``local:N`` (``local.workers=N`` forked processes; 0 = one per CPU).

The floor is the least any ingest can do with these files: ``np.load`` of each clip's features and joints
and a pyarrow Parquet write of the same columns (same nesting, codec and shard size), in one process.
The pipeline does that plus caption parsing, sub-clips (which carry their own frames: ~1.7× the floor's
rows), the instruction tables, validation, quarantine, checksums and the manifest. Each round runs the floor
and then a fresh build; the figures are medians over the rounds with their [min-max] ranges.

Goals, for each executor (the script exits 1 when one is missed):
- work units (the executor's run: every unit of every stage, on a running cluster) ≤ 1.5× the tuned floor;
- end to end (``movid build`` as a command: interpreter start, Ray start and stop, table-level checks) ≤ 2×;
- ``--quick`` (sizes where one-time costs — Ray start, the great-expectations import — would swamp the ratio):
  the per-record stages' summed seconds (ingest, instructions, clip stats, validate; not the import) ≤ 2.5×
  the floor, a regression guard for the per-record code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.config import load_config  # noqa: E402
from pipeline.sample_data import write_sample_humanml3d  # noqa: E402
from pipeline.shards import parquet_options  # noqa: E402
from schemas.motion import FEATURE_DIM, NUM_JOINTS, _nested  # noqa: E402

GOAL_UNITS, GOAL_END_TO_END, GOAL_STAGES_QUICK = 1.5, 2.0, 2.5
PER_RECORD_STAGES = ("ingest", "instructions", "clip_stats", "validate")


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for sub in ("new_joint_vecs", "new_joints", "texts") for p in (root / sub).iterdir())


def floor(root: Path, out: Path, max_rows: int, tuned: bool) -> float:
    ids = [i for s in ("train", "val", "test") for i in (root / f"{s}.txt").read_text().split()]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    for n, k in enumerate(range(0, len(ids), max_rows)):
        chunk = ids[k : k + max_rows]
        feats = [np.load(root / "new_joint_vecs" / f"{i}.npy") for i in chunk]
        joints = [np.load(root / "new_joints" / f"{i}.npy") for i in chunk]
        table = pa.table({"motion_id": chunk, "features": _nested(feats, (FEATURE_DIM,)),
                          "joints": _nested(joints, (NUM_JOINTS, 3))})  # fmt: skip
        # tuned: the pipeline's own writer options, so the floor is as fast as pyarrow gets here
        opts = parquet_options(table.schema, "zstd", 128) if tuned else {"compression": "zstd", "row_group_size": 128}
        pq.write_table(table, out / f"part-{n:05d}.parquet", **opts)
    return time.perf_counter() - t0


def executor_sets(spec: str) -> list[str]:
    name, _, workers = spec.partition(":")
    return [f"executor={name}"] + ([f"local.workers={workers}"] if workers else [])


def one_build(root: Path, work: Path, spec: str, t_floor: float) -> dict:
    """A fresh ``movid build`` in its own process, as a user runs it (interpreter start and imports included:
    a second build in this process would find great-expectations imported): its seconds end to end and its
    own timings, next to this round's floor."""
    out = work / "pipeline"
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    cmd = [sys.executable, "-m", "movid", "build", "--source", f"humanml3d={root}", "--out", str(out), "--quiet"]
    cmd += [a for kv in executor_sets(spec) for a in ("--set", kv)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    t_pipe = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"movid build ({spec}) failed:\n{proc.stderr[-3000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["reconciliation"]["ok"], "the build did not reconcile"
    s = manifest["seconds"]
    per_record = sum(s["unit_stages"].get(k, 0.0) for k in PER_RECORD_STAGES)
    return {"floor": t_floor, "end_to_end": t_pipe, "units": s["run"], "per_record": per_record, "seconds": s,
            "rows": sum(manifest["counts"]["motion"].values())}  # fmt: skip


def med(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]"


def report(rounds: list[dict], n: int, size_mb: float, executor: str, quick: bool) -> list[str]:
    """Print one executor's figures; return the goals it missed."""
    col = lambda k: [r[k] for r in rounds]  # noqa: E731
    ratio = lambda k: [r[k] / r["floor"] for r in rounds]  # noqa: E731
    print(f"\n== executor {executor}: {n} motions, {size_mb:.0f} MB of .npy/.txt ({os.cpu_count()} cores), "
          f"{len(rounds)} round(s); the build writes {rounds[0]['rows']} motion rows (sub-clips carry their own frames)")  # fmt: skip
    print(f"{'':<40}{'seconds: median [range]':>26}{'motions/s':>11}")
    for name, key in (("floor, tuned writer (1 process)", "floor"), (f"movid build ({executor}), end to end", "end_to_end"),
                      ("  of which work units", "units"), ("  per-record stages, summed over units", "per_record")):
        print(f"{name:<40}{med(col(key)):>26}{n / statistics.median(col(key)):>11.0f}")
    print("time per stage (median over rounds; unit stages are summed over the units, so over workers):")
    secs = [r["seconds"] for r in rounds]
    for k in sorted(secs[0]["unit_stages"]):
        print(f"  unit stage {k:<28}{med([s['unit_stages'].get(k, 0.0) for s in secs]):>26}")
    for k in ("plan", "ray_start", "ray_stop", "validate_setup", "table_checks"):  # (validate_setup: local:N's
        if k in secs[0]:  # import in the driver, before the forks)
            print(f"  {k:<39}{med([s[k] for s in secs]):>26}")
    missed = []
    goals = [("per-record stages / floor", ratio("per_record"), GOAL_STAGES_QUICK)] if quick else [
        ("work units / floor", ratio("units"), GOAL_UNITS), ("end to end / floor", ratio("end_to_end"), GOAL_END_TO_END)]
    for name, values, goal in goals:
        ok = statistics.median(values) <= goal
        print(f"ratio {name}: {med(values).strip()}×  (goal ≤ {goal}×: {'met' if ok else 'MISSED'})")
        missed += [] if ok else [f"{executor}: {name}"]
    return missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motions", type=int, default=None, help="clips including their mirrors (default 5000; --quick 1500)")
    ap.add_argument("--executor", default=None, help="comma-separated: ray, local, local:N (default ray,local:0; "
                    "--quick: local)")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=None, help="default 3; --quick 1")
    ap.add_argument("--quick", action="store_true", help="small and fast, with the per-record goal (make bench-check)")
    ap.add_argument("--workdir", default="bench_out")
    args = ap.parse_args()
    motions = args.motions or (1500 if args.quick else 5000)
    executors = (args.executor or ("local" if args.quick else "ray,local:0")).split(",")
    rounds = args.rounds or (1 if args.quick else 3)
    work = Path(args.workdir)
    root = work / f"humanml3d-{motions}"
    if not (root / "all.txt").is_file():
        print(f"generating {motions} synthetic motions in {root} …", flush=True)
        write_sample_humanml3d(root, n_motions=motions // 2, seed=0, show_progress=True)
    n = len((root / "all.txt").read_text().split())
    max_rows = load_config(None, [], [f"humanml3d={root}"]).shard.max_rows
    results: dict[str, list[dict]] = {e: [] for e in executors}
    for _ in range(rounds):  # interleaved: each round's floor, then every executor's build
        t_floor = floor(root, work / "floor", max_rows, tuned=True)
        for e in executors:
            results[e].append(one_build(root, work, e, t_floor))
    missed = [m for e in executors for m in report(results[e], n, tree_bytes(root) / 1e6, e, args.quick)]
    quick = " --quick" if args.quick else ""
    print(f"reproduce: .venv/bin/python bench/ingest.py{quick} --motions {motions} --executor {','.join(executors)} "
          f"--rounds {rounds}")  # fmt: skip
    if missed:
        print(f"bench/ingest.py: goal missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
