"""Ingest + write throughput: the movid pipeline on Ray vs a bare single-process floor.

    .venv/bin/python bench/ingest.py [--motions 5000] [--executor ray|local] [--workdir bench_out]

The floor is the least any ingest can do with these files: ``np.load`` of each clip's features and joints
and a pyarrow Parquet write of the same columns (same nesting, codec and shard size), in one process.
The pipeline does that plus caption parsing, validation, sub-clips, the instruction table, quarantine,
checksums and the manifest, as Ray tasks. Goal: pipeline time within 1.5× of the floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.build import build  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.sample_data import write_sample_humanml3d  # noqa: E402
from pipeline.shards import parquet_options  # noqa: E402
from schemas.motion import FEATURE_DIM, NUM_JOINTS, _nested  # noqa: E402


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for sub in ("new_joint_vecs", "new_joints", "texts") for p in (root / sub).iterdir())


def floor(root: Path, out: Path, max_rows: int, tuned: bool) -> float:
    ids = [i for s in ("train", "val", "test") for i in (root / f"{s}.txt").read_text().split()]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motions", type=int, default=5000, help="clips including their M mirrors")
    ap.add_argument("--executor", default="ray", choices=["ray", "local"])
    ap.add_argument("--workdir", default="bench_out")
    args = ap.parse_args()
    work = Path(args.workdir)
    root = work / f"humanml3d-{args.motions}"
    if not (root / "all.txt").is_file():
        print(f"generating {args.motions} synthetic motions in {root} …", flush=True)
        write_sample_humanml3d(root, n_motions=args.motions // 2, seed=0, show_progress=True)
    size_mb = tree_bytes(root) / 1e6
    n = len((root / "all.txt").read_text().split())

    cfg = load_config(None, [f"executor={args.executor}"], [f"humanml3d={root}"])
    for d in ("floor", "floor-defaults", "pipeline"):
        shutil.rmtree(work / d, ignore_errors=True)
    os.sync()
    t_naive = floor(root, work / "floor-defaults", cfg.shard.max_rows, tuned=False)
    t_floor = floor(root, work / "floor", cfg.shard.max_rows, tuned=True)
    t0 = time.perf_counter()
    manifest = build(cfg, str(work / "pipeline"), show_progress=False)
    t_pipe = time.perf_counter() - t0
    t_units = manifest["seconds"]["run"]  # units running; excludes starting and stopping a local Ray
    rows = sum(manifest["counts"]["motion"].values())

    print(f"\ninput: {n} motions, {size_mb:.0f} MB of .npy/.txt ({os.cpu_count()} cores)")
    print(f"{'':<34}{'seconds':>9}{'motions/s':>11}{'MB/s':>8}")
    print(f"{'floor, pyarrow defaults (1 proc)':<34}{t_naive:>9.2f}{n / t_naive:>11.0f}{size_mb / t_naive:>8.1f}")
    print(f"{'floor, tuned writer (1 proc)':<34}{t_floor:>9.2f}{n / t_floor:>11.0f}{size_mb / t_floor:>8.1f}")
    print(f"{f'movid build ({args.executor}, end to end)':<34}{t_pipe:>9.2f}{n / t_pipe:>11.0f}{size_mb / t_pipe:>8.1f}")
    print(f"{'  of which work units':<34}{t_units:>9.2f}{n / t_units:>11.0f}{size_mb / t_units:>8.1f}")
    if "ray_start" in manifest["seconds"]:
        s = manifest["seconds"]
        print(f"{'  starting / stopping local Ray':<34}{s['ray_start']:>9.2f} / {s['ray_stop']:.2f}")
    print(f"ratio pipeline / tuned floor: {t_pipe / t_floor:.2f}× end to end, {t_units / t_floor:.2f}× work units on a running cluster "
          f"(goal ≤ 1.5×); the floor writes {n} rows, the pipeline {rows} motion rows (sub-clips carry their own "
          f"frames) plus instructions and quarantine; reconciliation "
          f"{'ok' if manifest['reconciliation']['ok'] else 'FAILED'}")  # fmt: skip
    print(f"reproduce: .venv/bin/python bench/ingest.py --motions {args.motions} --executor {args.executor}")


if __name__ == "__main__":
    main()
