"""The ``quarantine`` table: one rejected record with the stage that rejected it and why.

Every input record ends in an output table or here; ``reason`` is a short stable code (counted in the
manifest as ``dropped_<reason>``), ``detail`` the human explanation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

__all__ = ["QUARANTINE_SCHEMA", "Reject", "rejects_table"]

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),  # the table the record was headed for
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # source kind
        pa.field("source_path", pa.string()),  # relative to the source root
        pa.field("split", pa.string()),
        pa.field("unit_id", pa.string()),  # the work unit, for requeueing
    ]
)


@dataclass(frozen=True)
class Reject:
    record_id: str
    table: str
    stage: str
    reason: str
    detail: str
    source: str
    source_path: str | None = None
    split: str | None = None
    unit_id: str | None = None


def rejects_table(rejects: list[Reject]) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in rejects], schema=QUARANTINE_SCHEMA)
