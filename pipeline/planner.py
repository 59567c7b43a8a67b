"""The planner: sources → work units with deterministic ids, plus the records it rejects before any
stage runs (an id in no split, in two splits, or not a safe file name).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import BuildConfig, ConfigError, SourceSpec
from schemas.quarantine import Reject

__all__ = ["Plan", "WorkUnit", "plan_build", "SPLITS"]

SPLITS = ("train", "val", "test")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class WorkUnit:
    unit_id: str  # stable: source kind, split, position and a hash of the record ids
    index: int  # position in plan order; fixes the order of shards
    source_kind: str
    source_root: str
    split: str
    record_ids: tuple[str, ...]


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


def _read_ids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: split file is not UTF-8 ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def _plan_humanml3d(source: SourceSpec, unit_size: int, first_index: int) -> Plan:
    root = Path(source.path)
    split_files = {s: root / f"{s}.txt" for s in SPLITS}
    present = {s: p for s, p in split_files.items() if p.is_file()}
    if not present:
        raise ConfigError(
            f"source humanml3d={source.path}: no split file; expected at least one of "
            f"{', '.join(f'{s}.txt' for s in SPLITS)} (HumanML3D layout)"
        )
    counts: Counter = Counter()
    rejects: list[Reject] = []
    order: list[str] = []  # first-listed order across split files
    splits_of: dict[str, list[str]] = {}
    for split, path in present.items():
        seen_here: set[str] = set()
        for rid in _read_ids(path):
            if rid in seen_here:
                counts["duplicate_listings"] += 1  # the same id twice in one split file is one record
                continue
            seen_here.add(rid)
            if rid not in splits_of:
                order.append(rid)
                splits_of[rid] = []
            splits_of[rid].append(split)
    all_path = root / "all.txt"
    if all_path.is_file():
        for rid in dict.fromkeys(_read_ids(all_path)):
            if rid not in splits_of:
                order.append(rid)
                splits_of[rid] = []

    def reject(rid, reason, detail, split=None):
        counts[f"dropped_{reason}"] += 1
        counts["quarantined"] += 1
        rejects.append(Reject(rid, "motion", "plan", reason, detail, "humanml3d", None, split))

    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for rid in order:
        counts["listed"] += 1
        splits = splits_of[rid]
        if not _SAFE_ID.match(rid):
            reject(rid, "invalid_id", f"id {rid!r} is not a plain file name")
        elif not splits:
            reject(rid, "no_split", "listed in all.txt but in none of train/val/test.txt")
        elif len(splits) > 1:
            reject(rid, "split_conflict", f"listed in {' and '.join(splits)}: it would leak across splits")
        else:
            by_split[splits[0]].append(rid)
            counts["planned"] += 1

    units = []
    for split in SPLITS:
        ids = by_split[split]
        for k in range(0, len(ids), unit_size):
            chunk = tuple(ids[k : k + unit_size])
            digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:10]
            index = first_index + len(units)
            units.append(WorkUnit(f"humanml3d-{split}-{k // unit_size:05d}-{digest}", index, "humanml3d",
                                  str(root), split, chunk))  # fmt: skip
    counts["units"] = len(units)
    return Plan(units, rejects, counts)


def plan_build(cfg: BuildConfig) -> Plan:
    if not cfg.sources:
        raise ConfigError("sources: no source given; pass --source humanml3d=PATH or set sources in the config")
    plan = Plan([], [], Counter())
    for source in cfg.sources:
        if source.kind != "humanml3d":  # config validation already refuses unsupported kinds
            raise ConfigError(f"sources: no planner for kind {source.kind!r}")
        part = _plan_humanml3d(source, cfg.plan.unit_size, first_index=len(plan.units))
        plan.units += part.units
        plan.rejects += part.rejects
        plan.counters.update(part.counters)
    return plan
