"""The planner: sources → work units with deterministic ids, plus the records it rejects before any
stage runs (an id in no split, in two splits, not a safe file name or too long for one; a metadata or
index row that is not a record).

Everything it reads is untrusted: split files are read BOM-safe (a bad byte makes one ``invalid_id``, not a
failed build); a metadata line that is not JSON, or not an object, is a quarantine row of its own (record id
``<metadata file>:<line>``), so the other rows still build; a ``captions`` field that is not a list of
strings is refused (``invalid_captions``), never split into characters; captions are normalised and
capped here (``stages.humanml3d_text.clean_caption``) so nothing unnormalised reaches a conversation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import BuildConfig, ConfigError, SourceSpec
from schemas.quarantine import Reject, excerpt
from stages.humanml3d_text import CaptionError, clean_caption
from stages.source_files import SourceFileError, SourceRoot, npy_shape

__all__ = ["MAX_ID_COMPONENT_BYTES", "Plan", "SPLITS", "WorkUnit", "id_problem", "plan_build", "split_unit"]

SPLITS = ("train", "val", "test")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_SAFE_REL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")  # Motion-X: subset/name
# An id names files (<id>.npy, <id>.txt): each path component must fit a file name (255 bytes on the usual
# file systems) with its extension.
MAX_ID_COMPONENT_BYTES = 251
MAX_ID_BYTES = 1024  # a Motion-X subset/name id as a whole


def id_problem(rid: str, safe: re.Pattern = _SAFE_ID) -> str | None:
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


_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # (not str.splitlines: it also splits at \v, \f, \x1c-\x1e, \x85, U+2028)


def _read_ids(path: Path) -> list[str]:
    """Ids of a split file: BOM-safe (utf-8-sig), LF, CRLF or CR line endings; a byte that is not UTF-8
    becomes U+FFFD and any other control character stays in its id, so that id fails the id check and is
    quarantined while the other ids plan."""
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as exc:
        raise ConfigError(f"{path}: split file cannot be read ({exc.strerror or exc})") from None
    return [line.strip(" \t") for line in _LINE_BREAK.split(text) if line.strip(" \t")]


def _contained(folder: Path, name: str, key: str, allowed: tuple[str, ...]) -> Path:
    """``folder/name`` for the planner to read, refused (ConfigError) when it resolves outside ``folder``."""
    try:
        return SourceRoot(folder, allowed, what=str(folder)).resolve(name)
    except SourceFileError as exc:
        raise ConfigError(f"{key}: {exc.detail}") from None


class _Splits:
    """Which split each id is listed in (train/val/test.txt under ``folder``), and the records the planner
    must reject: in no split, in two splits, not a safe id, or already planned from an earlier source."""

    def __init__(self, folder: Path, kind: str, safe: re.Pattern, taken: dict[str, tuple], allowed: tuple[str, ...]):
        files = {s: _contained(folder, f"{s}.txt", f"source {kind}: split file {s}.txt", allowed)
                 for s in (*SPLITS, "all")}  # fmt: skip
        present = {s: files[s] for s in SPLITS if files[s].is_file()}
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
        if files["all"].is_file():
            self.all_only = [rid for rid in dict.fromkeys(_read_ids(files["all"])) if rid not in self.of]

    def resolve(self, rid: str) -> str | None:
        """The record's split, or None after recording why it cannot be planned."""
        self.counts["listed"] += 1
        splits = self.of.get(rid, [])
        problem = id_problem(rid, self.safe)
        if problem:
            return self._reject(rid, "invalid_id", problem)
        if rid in self.taken:
            return self._reject(rid, "duplicate_id", "an earlier source of this build already has this id")
        if not splits:
            return self._reject(rid, "no_split", "listed in none of train/val/test.txt")
        if len(splits) > 1:
            return self._reject(rid, "split_conflict", f"listed in {' and '.join(splits)}: it would leak across splits")
        self.taken[rid] = (splits[0], self.kind, self.root)
        self.counts["planned"] += 1
        return splits[0]

    def reject_listed(self, rid: str, reason: str, detail: str) -> None:
        """A record that cannot even be resolved (its index row is broken): listed, and quarantined."""
        self.counts["listed"] += 1
        return self._reject(rid, reason, detail)

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


def _plan_split_listed(source: SourceSpec, cfg: BuildConfig, first: int, taken: dict, safe: re.Pattern) -> Plan:
    """humanml3d and motionx: the split files list the records."""
    root = Path(source.path)
    unit_size = cfg.plan.unit_size
    splits = _Splits(root, source.kind, safe, taken, cfg.ingest.allowed_roots)
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
    allowed = cfg.ingest.allowed_roots
    # amass.index, when the config names it, is trusted as named; the default one lies in the source
    index_path = Path(cfg.amass.index) if cfg.amass.index else _contained(root, "index.csv", "amass.index", allowed)
    splits = _Splits(Path(cfg.amass.splits or root), "amass", _SAFE_ID, taken, allowed)
    # (a byte that is not UTF-8 spoils one row's fields, which then fail the id or frame checks below)
    with open(index_path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        need = {"source_path", "start_frame", "end_frame", "new_name"}
        try:
            fields = set(reader.fieldnames or ())
        except csv.Error as exc:
            raise ConfigError(f"amass.index: {index_path}: not a CSV file ({exc})") from None
        if not need <= fields:
            raise ConfigError(f"amass.index: {index_path} needs columns {', '.join(sorted(need))}")
        rows = []
        for line_no, r in enumerate(_csv_rows(reader, index_path), start=2):
            rid = str(r.get("new_name") or "").strip().removesuffix(".npy")
            try:
                start, end = int(r["start_frame"]), int(r["end_frame"])
                source_path = r["source_path"].strip()
            except (TypeError, ValueError, AttributeError):  # (a short row leaves fields None)
                for twin in (rid or f"index.csv:{line_no}", "M" + rid) if rid else (f"index.csv:{line_no}",):
                    splits.reject_listed(twin, "invalid_metadata", f"index.csv line {line_no}: start_frame/end_frame "
                                         "are not integers, or the row is short")  # fmt: skip
                continue
            split, m_split = splits.resolve(rid), splits.resolve("M" + rid)
            if split or m_split:
                rows.append((rid, source_path, start, end, split, m_split))
    units = []
    for k in range(0, len(rows), cfg.plan.unit_size):
        chunk = tuple(rows[k : k + cfg.plan.unit_size])
        digest = hashlib.sha256(repr(chunk).encode()).hexdigest()[:10]
        ids = tuple(x for row in chunk for x, s in ((row[0], row[4]), ("M" + row[0], row[5])) if s)
        units.append(WorkUnit(f"amass-{k // cfg.plan.unit_size:05d}-{digest}", first + len(units), "amass", str(root),
                              "mixed", ids, chunk))  # fmt: skip
    splits.counts["units"] = len(units)
    return Plan(units, splits.rejects, splits.counts)


def _csv_rows(reader: csv.DictReader, path: Path):
    try:
        yield from reader
    except csv.Error as exc:  # e.g. a field larger than the csv module's limit
        raise ConfigError(f"{path} line {reader.line_num}: not CSV ({exc})") from None


def _read_metadata(path: Path) -> list[tuple[str, dict | None, tuple[str, str] | None]]:
    """Video metadata rows as (label, row, problem): JSONL (captions a list) or CSV (captions separated by
    ' | '). ``label`` names the line (``metadata.jsonl:7``); a line that is not UTF-8 JSON, or not a JSON
    object, has ``row`` None and ``problem`` (reason, detail) — one quarantine row, the rest still build."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.DictReader(fh)
            rows = []
            for r in _csv_rows(reader, path):
                r.pop(None, None)  # cells beyond the header
                r["captions"] = [c.strip() for c in (r.get("captions") or "").split(" | ") if c.strip()]
                for k in list(r):
                    if r[k] == "":
                        r[k] = None
                rows.append((f"{path.name}:{reader.line_num}", r, None))
        return rows
    rows = []
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for line_no, line in enumerate(data.replace(b"\r\n", b"\n").split(b"\n"), start=1):
        label = f"{path.name}:{line_no}"
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            rows.append((label, None, ("invalid_json", f"line {line_no}: byte {exc.start} is not UTF-8")))
            continue
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, or nesting deeper than Python recurses
            rows.append((label, None, ("invalid_json", f"line {line_no} is not JSON ({excerpt(str(exc))})")))
            continue
        if not isinstance(row, dict):
            rows.append((label, None, ("invalid_metadata", f"line {line_no} is JSON but not an object "
                                       f"(a {type(row).__name__})")))  # fmt: skip
            continue
        rows.append((label, row, None))
    return rows


def _motion_frames(kind: str, root: str, motion_id: str, cfg: BuildConfig) -> int | None:
    """Frames of a HumanML3D motion, read from its file header (the data stays on disk); None when the
    planner cannot tell (the ingest quarantines that motion with its reason)."""
    if kind != "humanml3d":
        return None
    try:
        rel = f"new_joint_vecs/{motion_id}.npy"
        shape = npy_shape(SourceRoot(root, cfg.ingest.allowed_roots).resolve(rel), rel)
    except Exception:  # anything wrong with the file is the ingest's to report, with its reason
        return None
    return shape[0] if shape else None


_STR_FIELDS = ("path", "video_id", "motion_id", "smpl", "split")


class _BadRow(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _captions(value, cfg: BuildConfig) -> tuple[str, ...]:
    """A row's captions: a list of strings (CSV rows give one), each normalised and within the caps."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _BadRow("invalid_captions", f"captions must be a list of strings, got a {type(value).__name__}")
    if len(value) > cfg.ingest.max_captions:
        raise _BadRow("too_many_captions", f"{len(value)} captions; ingest.max_captions is {cfg.ingest.max_captions}")
    bad = next((c for c in value if not isinstance(c, str)), None)
    if bad is not None:
        raise _BadRow("invalid_captions", f"captions must be a list of strings; one is a {type(bad).__name__}")
    try:
        return tuple(clean_caption(c, cfg.ingest.max_caption_chars, single_line=True) for c in value)
    except CaptionError as exc:
        raise _BadRow(exc.reason, f"a caption: {exc.detail}") from None


def _video_fields(meta: dict, cfg: BuildConfig) -> dict:
    """The typed fields of one metadata row, or _BadRow."""
    for k in _STR_FIELDS:
        if meta.get(k) is not None and not isinstance(meta[k], str):
            raise _BadRow("invalid_metadata", f"{k} must be a string, got a {type(meta[k]).__name__}")
    rel = meta.get("path") or ""
    if not rel.isprintable():
        raise _BadRow("invalid_metadata", f"path '{excerpt(rel)}' holds control characters")
    fields = {"path": rel, "video_id": meta.get("video_id") or _default_video_id(rel),
              "motion_id": meta.get("motion_id") or None, "smpl": meta.get("smpl") or None, "split": meta.get("split")}  # fmt: skip
    if fields["smpl"] and not fields["smpl"].isprintable():
        raise _BadRow("invalid_metadata", f"smpl '{excerpt(fields['smpl'])}' holds control characters")
    fields["captions"] = _captions(meta.get("captions"), cfg)
    return fields


def _default_video_id(rel: str) -> str:
    """A video's id when the row gives none: its path without the extension."""
    try:
        return Path(rel).with_suffix("").as_posix()
    except ValueError:  # a path with no name ('.', '/', '..'): the id check refuses it
        return rel


def _times(meta: dict) -> dict:
    try:
        times = {k: (None if meta.get(k) in (None, "") else float(meta[k])) for k in ("start", "end", "offset")}
    except (TypeError, ValueError, OverflowError):
        raise _BadRow("invalid_metadata", "start/end/offset must be seconds") from None
    if any(t is not None and not math.isfinite(t) for t in times.values()) or (times["start"] or 0.0) < 0:
        raise _BadRow("invalid_metadata", "start/end/offset must be finite seconds, start >= 0")
    if times["start"] is not None and times["end"] is not None and times["end"] <= times["start"]:
        raise _BadRow("invalid_metadata", f"end {times['end']} <= start {times['start']}")
    return times


def _plan_video(source: SourceSpec, cfg: BuildConfig, first: int, taken: dict) -> Plan:
    """video: one record per metadata row; a video that names a motion takes that motion's split."""
    root = Path(source.path)
    counts: Counter = Counter()
    rejects: list[Reject] = []
    seen: set[str] = set()
    rows = []
    for label, meta, problem in _read_metadata(root / cfg.video.metadata):
        counts["videos_listed"] += 1
        vid, rel, split = label, None, None
        if meta is not None:  # a name for the quarantine row, should the row be refused
            guess = meta.get("video_id") or (_default_video_id(meta["path"]) if isinstance(meta.get("path"), str) else None)
            vid = guess if isinstance(guess, str) and guess else label
        try:
            if problem:
                raise _BadRow(*problem)
            f = _video_fields(meta, cfg)
            vid, rel, split = f["video_id"], f["path"] or None, f["split"]
            motion_id, smpl = f["motion_id"], f["smpl"]
            if not rel:
                raise _BadRow("invalid_id", "row without a usable path")
            why = id_problem(vid, _SAFE_REL_ID)
            if why:
                raise _BadRow("invalid_id", why)
            if vid in seen:
                raise _BadRow("duplicate_id", "another metadata row has this video id")
            if motion_id and not smpl and motion_id not in taken:
                raise _BadRow("unknown_motion", f"motion '{excerpt(motion_id)}' is not in this build")
            if smpl and (motion_id or vid) in taken:
                raise _BadRow("duplicate_id", f"motion id '{excerpt(motion_id or vid)}' is already taken")
            times = _times(meta)
            split = split or (taken[motion_id][0] if motion_id in taken else None)
            if split not in SPLITS:
                raise _BadRow("no_split", f"split '{excerpt(str(split))}': give a split, or a motion_id whose split "
                              "is known")  # fmt: skip
        except _BadRow as bad:
            counts["videos_quarantined"] += 1
            counts[f"dropped_{bad.reason}"] += 1
            rejects.append(Reject(vid or label, "video", "plan", bad.reason, bad.detail, "video", rel,
                                  split if isinstance(split, str) else None))  # fmt: skip
            continue
        seen.add(vid)
        frames = None
        if motion_id and not smpl:
            frames = _motion_frames(taken[motion_id][1], taken[motion_id][2], motion_id, cfg)
            if frames is None:
                motion_id = None  # a motion whose length the planner cannot read: the video is kept unaligned
                counts["videos_unaligned"] += 1
        if smpl:
            if not cfg.smpl.model_dir:
                raise ConfigError(f"smpl.model_dir: required — video {vid!r} comes with per-frame SMPL-X parameters")
            motion_id = motion_id or vid
            taken[motion_id] = (split, "video", str(root))
        counts["videos_planned"] += 1
        rows.append((vid, rel, f["captions"], split, times["start"], times["end"], times["offset"], motion_id, frames,
                     smpl))  # fmt: skip
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
            part = _plan_split_listed(source, cfg, first, taken, _SAFE_ID)
        elif source.kind == "motionx":
            part = _plan_split_listed(source, cfg, first, taken, _SAFE_REL_ID)
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
