"""Arrow schemas of movid's tables, the schema version every shard carries, and the conformance check.

One module per table (``motion``, ``instruction``, ``quarantine``); this package ties them together so the
writer and the validator can look a table up by name.
"""

from __future__ import annotations

import pyarrow as pa

from schemas.bench import BENCH_SCHEMA
from schemas.clip_stats import CLIP_STATS_SCHEMA
from schemas.instruction import INSTRUCTION_SCHEMA
from schemas.motion import MOTION_SCHEMA
from schemas.quarantine import QUARANTINE_SCHEMA
from schemas.video import VIDEO_SCHEMA

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_KEY",
    "TABLE_KEY",
    "TABLES",
    "SchemaMismatch",
    "check_conforms",
    "schema_for",
    "with_table_metadata",
]

# Bump on any change to a table's columns or their meaning; readers compare it with the shard metadata.
SCHEMA_VERSION = "1.3.0"  # 1.1: the video table; 1.2: motion.quality_flags; 1.3: instruction/bench.facts
SCHEMA_VERSION_KEY = b"movid.schema_version"
TABLE_KEY = b"movid.table"

TABLES: dict[str, pa.Schema] = {
    "motion": MOTION_SCHEMA,
    "instruction": INSTRUCTION_SCHEMA,
    "video": VIDEO_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "bench": BENCH_SCHEMA,  # model/bench.py: test-split QA chosen by category quotas
    "clip_stats": CLIP_STATS_SCHEMA,  # stages/clip_stats.py: duration, path length, speed per motion clip
}


class SchemaMismatch(ValueError):
    """A table does not conform to its movid schema; the message names the offending column."""


def schema_for(table_name: str) -> pa.Schema:
    try:
        return TABLES[table_name]
    except KeyError:
        raise KeyError(f"unknown table {table_name!r}; movid tables are {sorted(TABLES)}") from None


def with_table_metadata(schema: pa.Schema, table_name: str) -> pa.Schema:
    """The schema with movid's version and table name in its metadata (it ends up in the Parquet footer)."""
    metadata = dict(schema.metadata or {})
    metadata[SCHEMA_VERSION_KEY] = SCHEMA_VERSION.encode()
    metadata[TABLE_KEY] = table_name.encode()
    return schema.with_metadata(metadata)


def check_conforms(table: pa.Table, table_name: str) -> None:
    """Raise :class:`SchemaMismatch` naming the first column that is missing, extra, mistyped or has
    nulls where the schema forbids them."""
    expected = schema_for(table_name)
    names = set(table.schema.names)
    for field in expected:
        if field.name not in names:
            raise SchemaMismatch(f"{table_name}: column {field.name!r} is missing")
    extra = [n for n in table.schema.names if n not in set(expected.names)]
    if extra:
        raise SchemaMismatch(f"{table_name}: column {extra[0]!r} is not in the {table_name} schema")
    for field in expected:
        actual = table.schema.field(field.name)
        if not actual.type.equals(field.type):
            raise SchemaMismatch(
                f"{table_name}: column {field.name!r} has type {actual.type}, expected {field.type}"
            )
        if not field.nullable and table.column(field.name).null_count:
            raise SchemaMismatch(f"{table_name}: column {field.name!r} holds nulls but is not nullable")
    if table.schema.names != expected.names:
        raise SchemaMismatch(f"{table_name}: columns are out of order: {table.schema.names}")
