"""What a finished build should not keep quiet about: it wrote no motion rows, or it quarantined more than
half of the records its sources list. The CLI prints these after the summary (``movid build --strict``
exits 1 on them), each naming the top quarantine reasons with one example record apiece, so a wrong folder
or a broken source is seen at once rather than in a near-empty dataset later."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["build_warnings"]

TOP_REASONS = 3
RECORD_TABLES = ("motion", "video")  # quarantine rows for records (not for single QA pairs or captions)


def _record_rejects(out: Path, manifest: dict):
    """The record-level quarantine rows of the build (record_id, table, reason, detail), or None."""
    paths = [out / s["path"] for s in manifest.get("shards", []) if s.get("table") == "quarantine"]
    tables = [pq.read_table(p, columns=["record_id", "table", "reason", "detail"]) for p in paths]
    if not tables:
        return None
    t = pa.concat_tables(tables)
    return t.filter(pc.is_in(t["table"], value_set=pa.array(RECORD_TABLES)))


def _top_reasons(rejects) -> list[str]:
    if rejects is None or not rejects.num_rows:
        return []
    rows = rejects.to_pylist()
    counts = Counter(r["reason"] for r in rows)
    first = {}
    for r in rows:
        first.setdefault(r["reason"], r)
    return [f"{reason} ({n}), e.g. {first[reason]['record_id']}: {first[reason]['detail']}"
            for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]]  # fmt: skip


def build_warnings(out: str | Path, manifest: dict) -> list[str]:
    """One line per warning (with the top reasons indented under it); empty when the build looks sound."""
    out = Path(out)
    listed = int(manifest.get("stages", {}).get("plan", {}).get("listed", 0))
    motion_rows = sum(manifest.get("counts", {}).get("motion", {}).values())
    video_rows = sum(manifest.get("counts", {}).get("video", {}).values())
    rejects = _record_rejects(out, manifest)
    quarantined = 0 if rejects is None else len(set(rejects["record_id"].to_pylist()))
    warnings = []
    if not motion_rows and not video_rows:
        warnings.append(f"the build wrote no motion rows ({listed} records listed by its sources, {quarantined} "
                        "quarantined); is the source folder the right one?")  # fmt: skip
    elif listed and quarantined > listed / 2:
        warnings.append(f"the build quarantined {quarantined} of the {listed} records its sources list")
    if warnings:
        reasons = _top_reasons(rejects)
        warnings += [f"  top reason: {r}" for r in reasons] or ["  (no quarantined record says why)"]
    return warnings
