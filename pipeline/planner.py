"""The planner: sources → work units with deterministic ids, plus the records it rejects before any
stage runs (an id in no split, in two splits, or not a safe file name).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import BuildConfig, ConfigError, SourceSpec
from schemas.quarantine import Reject

__all__ = ["Plan", "WorkUnit", "plan_build", "split_unit", "SPLITS"]

SPLITS = ("train", "val", "test")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SAFE_REL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")  # Motion-X: subset/name


@dataclass(frozen=True)
class WorkUnit:
    unit_id: str  # stable: source kind, split, position and a hash of the record ids
    index: int  # position in plan order; fixes the order of shards
    source_kind: str
    source_root: str
    split: str  # the split of every record, or "mixed" (amass units carry each record's split in rows)
    record_ids: tuple[str, ...]
    rows: tuple[tuple, ...] = ()  # amass: (new_name, source_path, start_frame, end_frame, split, m_split)


def split_unit(unit: WorkUnit) -> list[WorkUnit]:
    """``unit`` as single-record units, in its record order, so a record that kills its worker (a segfault in a
    native decoder) can be isolated. A record is one id (humanml3d, motionx), one index row (amass: a clip and
    its ``M`` mirror) or one metadata row (video). Ids are ``<unit_id>.<k:05d>``: stable, sorting in record
    order, and never a planned unit's id (those hold no dot). Each keeps the parent's ``index`` (shard order)."""
    if unit.rows:
        parts = []
        for row in unit.rows:
            if unit.source_kind == "amass":  # (new_name, …, split, m_split): the ids that have a split
                ids = tuple(x for x, s in ((row[0], row[4]), ("M" + row[0], row[5])) if s)
            else:
                ids = (row[0],)
            parts.append((ids, (row,)))
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


def _read_ids(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: split file is not UTF-8 ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


class _Splits:
    """Which split each id is listed in (train/val/test.txt under ``folder``), and the records the planner
    must reject: in no split, in two splits, not a safe id, or already planned from an earlier source."""

    def __init__(self, folder: Path, kind: str, safe: re.Pattern, taken: dict[str, tuple]):
        present = {s: folder / f"{s}.txt" for s in SPLITS if (folder / f"{s}.txt").is_file()}
        if not present:
            raise ConfigError(f"source {kind}: no split file in {folder}; expected at least one of "
                              f"{', '.join(f'{s}.txt' for s in SPLITS)}")  # fmt: skip
        self.kind, self.safe, self.taken, self.root = kind, safe, taken, str(folder)
        self.counts: Counter = Counter()
        self.rejects: list[Reject] = []
        self.of: dict[str, list[str]] = {}
        for split, path in present.items():
            seen_here: set[str] = set()
            for rid in _read_ids(path):
                if rid in seen_here:
                    self.counts["duplicate_listings"] += 1  # the same id twice in one split file is one record
                    continue
                seen_here.add(rid)
                self.of.setdefault(rid, []).append(split)
        self.all_only = []
        if (folder / "all.txt").is_file():
            self.all_only = [rid for rid in dict.fromkeys(_read_ids(folder / "all.txt")) if rid not in self.of]

    def resolve(self, rid: str) -> str | None:
        """The record's split, or None after recording why it cannot be planned."""
        self.counts["listed"] += 1
        splits = self.of.get(rid, [])
        if not self.safe.match(rid):
            return self._reject(rid, "invalid_id", f"id {rid!r} is not a plain file name")
        if rid in self.taken:
            return self._reject(rid, "duplicate_id", "an earlier source of this build already has this id")
        if not splits:
            return self._reject(rid, "no_split", "listed in none of train/val/test.txt")
        if len(splits) > 1:
            return self._reject(rid, "split_conflict", f"listed in {' and '.join(splits)}: it would leak across splits")
        self.taken[rid] = (splits[0], self.kind, self.root)
        self.counts["planned"] += 1
        return splits[0]

    def _reject(self, rid: str, reason: str, detail: str) -> None:
        self.counts[f"dropped_{reason}"] += 1
        self.counts["quarantined"] += 1
        self.rejects.append(Reject(rid, "motion", "plan", reason, detail, self.kind, None, None))
        return None


def _units_by_split(kind: str, root: str, ids_by_split: dict[str, list[str]], unit_size: int, first: int) -> list[WorkUnit]:
    units = []
    for split in SPLITS:
        ids = ids_by_split.get(split, [])
        for k in range(0, len(ids), unit_size):
            chunk = tuple(ids[k : k + unit_size])
            digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:10]
            units.append(WorkUnit(f"{kind}-{split}-{k // unit_size:05d}-{digest}", first + len(units), kind, root,
                                  split, chunk))  # fmt: skip
    return units


def _plan_split_listed(source: SourceSpec, unit_size: int, first: int, taken: dict, safe: re.Pattern) -> Plan:
    """humanml3d and motionx: the split files list the records."""
    root = Path(source.path)
    splits = _Splits(root, source.kind, safe, taken)
    by_split: dict[str, list[str]] = {s: [] for s in SPLITS}
    for rid in list(splits.of) + splits.all_only:
        split = splits.resolve(rid)
        if split:
            by_split[split].append(rid)
    units = _units_by_split(source.kind, str(root), by_split, unit_size, first)
    splits.counts["units"] = len(units)
    return Plan(units, splits.rejects, splits.counts)


def _plan_amass(source: SourceSpec, cfg: BuildConfig, first: int, taken: dict) -> Plan:
    """amass: each row of HumanML3D's index.csv is a clip and its mirror (``M`` + new_name), split by
    HumanML3D's split files; ids the split files list but the index lacks are another source's."""
    root = Path(source.path)
    index_path = Path(cfg.amass.index or root / "index.csv")
    splits = _Splits(Path(cfg.amass.splits or root), "amass", _SAFE_ID, taken)
    with open(index_path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"source_path", "start_frame", "end_frame", "new_name"}
        if not need <= set(reader.fieldnames or ()):
            raise ConfigError(f"amass.index: {index_path} needs columns {', '.join(sorted(need))}")
        rows = []
        for line_no, r in enumerate(reader, start=2):
            try:
                start, end = int(r["start_frame"]), int(r["end_frame"])
            except ValueError:
                raise ConfigError(f"amass.index: {index_path} line {line_no}: start/end frames are not integers") from None
            rid = r["new_name"].strip().removesuffix(".npy")
            split, m_split = splits.resolve(rid), splits.resolve("M" + rid)
            if split or m_split:
                rows.append((rid, r["source_path"].strip(), start, end, split, m_split))
    units = []
    for k in range(0, len(rows), cfg.plan.unit_size):
        chunk = tuple(rows[k : k + cfg.plan.unit_size])
        digest = hashlib.sha256(repr(chunk).encode()).hexdigest()[:10]
        ids = tuple(x for row in chunk for x, s in ((row[0], row[4]), ("M" + row[0], row[5])) if s)
        units.append(WorkUnit(f"amass-{k // cfg.plan.unit_size:05d}-{digest}", first + len(units), "amass", str(root),
                              "mixed", ids, chunk))  # fmt: skip
    splits.counts["units"] = len(units)
    return Plan(units, splits.rejects, splits.counts)


def _read_metadata(path: Path) -> list[dict]:
    """Video metadata: JSONL (captions a list) or CSV (captions separated by ' | ')."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for r in rows:
            r["captions"] = [c.strip() for c in (r.get("captions") or "").split(" | ") if c.strip()]
            for k in list(r):
                if r[k] == "":
                    r[k] = None
        return rows
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"video.metadata: {path} line {line_no} is not JSON ({exc})") from None
    return rows


def _motion_frames(kind: str, root: str, motion_id: str) -> int | None:
    """Frames of a HumanML3D motion, read from its file header (the data stays on disk)."""
    if kind != "humanml3d":
        return None
    try:
        return int(np.load(Path(root) / "new_joint_vecs" / f"{motion_id}.npy", mmap_mode="r").shape[0])
    except (OSError, ValueError):
        return None


def _plan_video(source: SourceSpec, cfg: BuildConfig, first: int, taken: dict) -> Plan:
    """video: one record per metadata row; a video that names a motion takes that motion's split."""
    root = Path(source.path)
    counts: Counter = Counter()
    rejects: list[Reject] = []
    seen: set[str] = set()
    rows = []
    for meta in _read_metadata(root / cfg.video.metadata):
        counts["videos_listed"] += 1
        rel = str(meta.get("path") or "")
        vid = str(meta.get("video_id") or Path(rel).with_suffix("").as_posix())
        motion_id, smpl = meta.get("motion_id"), meta.get("smpl")
        split = meta.get("split")
        reason = None
        if not rel or not _SAFE_REL_ID.match(vid):
            reason, detail = "invalid_id", f"row without a usable path/video_id: {meta!r}"[:300]
        elif vid in seen:
            reason, detail = "duplicate_id", "another metadata row has this video id"
        elif motion_id and not smpl and motion_id not in taken:
            reason, detail = "unknown_motion", f"motion {motion_id!r} is not in this build"
        elif smpl and (motion_id or vid) in taken:
            reason, detail = "duplicate_id", f"motion id {motion_id or vid!r} is already taken"
        times = {}
        if reason is None:
            try:
                times = {k: (None if meta.get(k) in (None, "") else float(meta[k])) for k in ("start", "end", "offset")}
            except (TypeError, ValueError):
                reason, detail = "invalid_metadata", f"start/end/offset must be seconds: {meta!r}"[:300]
            else:
                if times["start"] is not None and times["end"] is not None and times["end"] <= times["start"]:
                    reason, detail = "invalid_metadata", f"end {times['end']} <= start {times['start']}"
        if reason is None:
            split = split or (taken[motion_id][0] if motion_id in taken else None)
            if split not in SPLITS:
                reason, detail = "no_split", f"split {split!r}: give a split, or a motion_id whose split is known"
        if reason:
            counts["videos_quarantined"] += 1
            counts[f"dropped_{reason}"] += 1
            rejects.append(Reject(vid or rel or "?", "video", "plan", reason, detail, "video", rel or None, split))
            continue
        seen.add(vid)
        frames = None
        if motion_id and not smpl:
            frames = _motion_frames(taken[motion_id][1], taken[motion_id][2], motion_id)
            if frames is None:
                motion_id = None  # a motion whose length the planner cannot read: the video is kept unaligned
                counts["videos_unaligned"] += 1
        if smpl:
            if not cfg.smpl.model_dir:
                raise ConfigError(f"smpl.model_dir: required — video {vid!r} comes with per-frame SMPL-X parameters")
            motion_id = motion_id or vid
            taken[motion_id] = (split, "video", str(root))
        counts["videos_planned"] += 1
        rows.append((vid, rel, tuple(meta.get("captions") or ()), split, times["start"], times["end"], times["offset"],
                     motion_id, frames, smpl))  # fmt: skip
    units = []
    for k in range(0, len(rows), cfg.plan.unit_size):
        chunk = tuple(rows[k : k + cfg.plan.unit_size])
        digest = hashlib.sha256(repr(chunk).encode()).hexdigest()[:10]
        units.append(WorkUnit(f"video-{k // cfg.plan.unit_size:05d}-{digest}", first + len(units), "video", str(root),
                              "mixed", tuple(r[0] for r in chunk), chunk))  # fmt: skip
    counts["units"] = len(units)
    return Plan(units, rejects, counts)


def plan_build(cfg: BuildConfig) -> Plan:
    if not cfg.sources:
        raise ConfigError("sources: no source given; pass --source humanml3d=PATH or set sources in the config")
    plan = Plan([], [], Counter())
    taken: dict[str, tuple] = {}  # motion id → (split, kind, root) planned so far; a later source may not reuse one
    # motion sources first: videos name motions of the build
    for source in sorted(cfg.sources, key=lambda s: s.kind == "video"):
        first = len(plan.units)
        if source.kind == "humanml3d":
            part = _plan_split_listed(source, cfg.plan.unit_size, first, taken, _SAFE_ID)
        elif source.kind == "motionx":
            part = _plan_split_listed(source, cfg.plan.unit_size, first, taken, _SAFE_REL_ID)
        elif source.kind == "amass":
            part = _plan_amass(source, cfg, first, taken)
        elif source.kind == "video":
            part = _plan_video(source, cfg, first, taken)
        else:  # config validation already refuses unsupported kinds
            raise ConfigError(f"sources: no planner for kind {source.kind!r}")
        plan.units += part.units
        plan.rejects += part.rejects
        plan.counters.update(part.counters)
    return plan
