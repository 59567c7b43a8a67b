"""Parquet shard writing: slices of at most ``max_rows`` rows, schema version in the footer metadata,
and each file's rows, bytes and sha256 recorded for the manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import check_conforms, with_table_metadata

__all__ = ["file_sha256", "parquet_options", "write_table_shards"]


def _is_float_tensor(tp: pa.DataType) -> bool:
    while pa.types.is_list(tp) or pa.types.is_fixed_size_list(tp):
        tp = tp.value_type
    return pa.types.is_floating(tp)


def parquet_options(schema: pa.Schema, compression: str, row_group_rows: int) -> dict:
    """Writer options. Dictionary encoding and min/max statistics on the big float tensors (features,
    joints) cost twice the write time and make files larger (measured in bench/ingest.py), so only the
    scalar and string columns get them."""
    opts = {"compression": None if compression == "none" else compression, "row_group_size": row_group_rows}
    tensors = [f.name for f in schema if pa.types.is_list(f.type) and _is_float_tensor(f.type)]
    if tensors:
        flat = [f.name for f in schema if f.name not in tensors and not pa.types.is_nested(f.type)]
        opts |= {"use_dictionary": flat, "write_statistics": flat}
    return opts


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_table_shards(
    table: pa.Table, table_name: str, folder: Path, *, max_rows: int, compression: str, row_group_rows: int,
    file_name: str = "{:05d}.parquet", min_files: int = 0, write_bytes=None,
) -> list[dict]:
    """Write ``table`` as ``folder/00000.parquet``, ``00001``… (``file_name``, formatted with the file's index).
    Returns one record per file (path relative to ``folder``). The caller owns atomicity (``folder`` is a
    private staging folder), or passes ``write_bytes(path, data)`` (an atomic write of a whole file).
    ``min_files=1`` writes an empty table as one file with no rows."""
    check_conforms(table, table_name)
    table = table.replace_schema_metadata(with_table_metadata(table.schema, table_name).metadata)
    opts = parquet_options(table.schema, compression, row_group_rows)
    files = []
    for j, start in enumerate(range(0, max(table.num_rows, min_files), max_rows)):
        part = table.slice(start, max_rows)
        path = folder / file_name.format(j)
        path.parent.mkdir(parents=True, exist_ok=True)
        if write_bytes is None:
            pq.write_table(part, path, **opts)
        else:
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, **opts)
            write_bytes(path, sink.getvalue().to_pybytes())
        files.append({"file": path.name, "rows": part.num_rows, "bytes": path.stat().st_size,
                      "sha256": file_sha256(path)})  # fmt: skip
    return files
