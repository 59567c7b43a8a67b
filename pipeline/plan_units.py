"""What a plan is made of: work units (records with deterministic ids, in plan order), the one way units are
cut from a source's records, the record-id rules, and the split of a unit into single-record units."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import ConfigError
from pipeline.records import AmassRow, VideoRow, as_tuple
from schemas.quarantine import Reject, excerpt

__all__ = ["MAX_ID_BYTES", "MAX_ID_COMPONENT_BYTES", "Plan", "SAFE_ID", "SAFE_REL_ID", "SPLITS", "WorkUnit",
           "csv_rows", "id_problem", "make_units", "split_unit"]  # fmt: skip

SPLITS = ("train", "val", "test")
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
SAFE_REL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")  # Motion-X: subset/name
# An id names files (<id>.npy, <id>.txt): each path component must fit a file name (255 bytes on the usual
# file systems) with its extension.
MAX_ID_COMPONENT_BYTES = 251
MAX_ID_BYTES = 1024  # a Motion-X subset/name id as a whole


def id_problem(rid: str, safe: re.Pattern = SAFE_ID) -> str | None:
    """Why ``rid`` cannot be a record id (a file name under a source), or None."""
    if len(rid) > MAX_ID_BYTES or any(len(part.encode()) > MAX_ID_COMPONENT_BYTES for part in rid.split("/")):
        return f"id of {len(rid.encode())} bytes is longer than a file name may be"
    if not safe.match(rid):
        return f"id '{excerpt(rid)}' is not a plain file name"
    return None


@dataclass(frozen=True)
class WorkUnit:
    unit_id: str  # stable: source kind, split, position and a hash of the record ids
    index: int  # position in plan order; fixes the order of shards
    source_kind: str
    source_root: str
    split: str  # the split of every record, or "mixed" (amass and video units carry each record's split in rows)
    record_ids: tuple[str, ...]
    rows: tuple[AmassRow | VideoRow, ...] = ()  # the planned rows of sources planned from an index or metadata


def make_units(kind: str, root: str, records: list, unit_size: int, first: int, split: str | None = None) -> list[WorkUnit]:
    """``records`` cut into units of ``unit_size``, numbered from plan position ``first``. Records are ids (one
    split, given: ids ``<kind>-<split>-<n>-<hash of the ids>``) or typed rows (``<kind>-<n>-<hash of the rows>``,
    split "mixed"). The hashes are of the ids' lines and of the rows' field tuples, as they always were."""
    units = []
    for n, k in enumerate(range(0, len(records), unit_size)):
        chunk = tuple(records[k : k + unit_size])
        if split is not None:
            digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:10]
            units.append(WorkUnit(f"{kind}-{split}-{n:05d}-{digest}", first + len(units), kind, root, split, chunk))
            continue
        digest = hashlib.sha256(repr(tuple(as_tuple(r) for r in chunk)).encode()).hexdigest()[:10]
        ids = tuple(rid for r in chunk for rid in r.record_ids())
        units.append(WorkUnit(f"{kind}-{n:05d}-{digest}", first + len(units), kind, root, "mixed", ids, chunk))
    return units


def split_unit(unit: WorkUnit) -> list[WorkUnit]:
    """``unit`` as single-record units, in its record order, so a record that kills its worker (a segfault in a
    native decoder) can be isolated. A record is one id (humanml3d, motionx), one index row (amass: a clip and
    its ``M`` mirror) or one metadata row (video). Ids are ``<unit_id>.<k:05d>``: stable, sorting in record
    order, and never a planned unit's id (those hold no dot). Each keeps the parent's ``index`` (shard order)."""
    if unit.rows:
        parts = [(row.record_ids(), (row,)) for row in unit.rows]
    else:
        parts = [((rid,), ()) for rid in unit.record_ids]
    return [WorkUnit(f"{unit.unit_id}.{k:05d}", unit.index, unit.source_kind, unit.source_root, unit.split, ids, rows)
            for k, (ids, rows) in enumerate(parts)]  # fmt: skip


@dataclass
class Plan:
    units: list[WorkUnit]
    rejects: list[Reject]
    counters: Counter

    @property
    def plan_hash(self) -> str:
        h = hashlib.sha256()
        for u in self.units:
            h.update(u.unit_id.encode() + b"\n")
        for r in self.rejects:
            h.update(f"{r.record_id}:{r.reason}\n".encode())
        return h.hexdigest()[:16]


def csv_rows(reader: csv.DictReader, path: Path):
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a field larger than the csv module's limit
        raise ConfigError(f"{path} line {reader.line_num}: not CSV ({exc})") from None
