"""Per-clip statistics: one ``clip_stats`` row per motion row — its duration, the length of the root's path
on the ground plane and its mean speed. A small stage, and the example of docs/architecture.md's "how to
add a stage": a plain function over the unit's ``motion`` table, declared in ``pipeline/stage_graph.py``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from schemas.clip_stats import CLIP_STATS_SCHEMA
from stages import StageResult
from stages.annotate import joint_arrays

__all__ = ["clip_stats"]

ROOT = 0  # the pelvis


def clip_stats(motion: pa.Table) -> StageResult:
    """``motion``: motion rows (``motion_id``, ``split``, ``fps``, ``joints`` are read). Counters: ``clips_in`` =
    ``clips_out`` (every clip has statistics; validation already refused the ones that are not finite)."""
    fps = motion.column("fps").to_numpy().astype(np.float64)
    duration, path = [], []
    for joints, rate in zip(joint_arrays(motion.column("joints")), fps, strict=True):
        ground = joints[:, ROOT, [0, 2]].astype(np.float64)  # Y is up: the ground plane is XZ
        path.append(float(np.linalg.norm(np.diff(ground, axis=0), axis=1).sum()))
        duration.append(len(joints) / rate)
    speed = [p / d if d > 0 else 0.0 for p, d in zip(path, duration, strict=True)]
    table = pa.table({"motion_id": motion.column("motion_id"), "split": motion.column("split"),
                      "duration_s": pa.array(duration, pa.float32()), "path_length_m": pa.array(path, pa.float32()),
                      "mean_speed_mps": pa.array(speed, pa.float32())}, schema=CLIP_STATS_SCHEMA)  # fmt: skip
    counts = Counter(clips_in=motion.num_rows, clips_out=table.num_rows)
    return StageResult(tables={"clip_stats": table}, counters=counts)
