"""Parquet shard writing: slices of at most ``max_rows`` rows, schema version in the footer metadata,
and each file's rows, bytes and sha256 recorded for the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import check_conforms, with_table_metadata

__all__ = ["file_sha256", "write_table_shards"]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_table_shards(
    table: pa.Table, table_name: str, folder: Path, *, max_rows: int, compression: str, row_group_rows: int
) -> list[dict]:
    """Write ``table`` as ``folder/00000.parquet``, ``00001``… Returns one record per file (path relative to
    ``folder``). The caller owns atomicity (``folder`` is a private staging folder)."""
    check_conforms(table, table_name)
    table = table.replace_schema_metadata(with_table_metadata(table.schema, table_name).metadata)
    files = []
    for j, start in enumerate(range(0, table.num_rows, max_rows)):
        part = table.slice(start, max_rows)
        path = folder / f"{j:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            part, path, compression=None if compression == "none" else compression, row_group_size=row_group_rows
        )
        files.append({"file": path.name, "rows": part.num_rows, "bytes": path.stat().st_size,
                      "sha256": file_sha256(path)})  # fmt: skip
    return files
