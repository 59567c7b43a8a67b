"""Reading the bench table (``OUT/bench/part-NNNNN.parquet``, written at commit by ``pipeline/bench.py``; its
schema, categories and the instruction-row → bench-row mapping are in ``schemas/bench.py``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

__all__ = ["read_bench"]


def read_bench(path: str | Path) -> list[dict]:
    """Bench rows from a build folder, its ``bench/`` folder or a Parquet file."""
    p = Path(path)
    if p.is_dir() and (p / "bench").is_dir():
        p = p / "bench"
    files = sorted(p.glob("*.parquet")) if p.is_dir() else [p]
    if not files:
        raise FileNotFoundError(f"{path}: no bench shard (build with bench.enabled=true)")
    return [r for f in files for r in pq.read_table(f).to_pylist()]

