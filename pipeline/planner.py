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
import re
from collections import Counter
from pathlib import Path

from pipeline.config import BuildConfig, ConfigError, SourceSpec
from pipeline.plan_units import (
    MAX_ID_COMPONENT_BYTES,
    SAFE_ID,
    SAFE_REL_ID,
    SPLITS,
    Plan,
    WorkUnit,
    csv_rows,
    id_problem,
    make_units,
    split_unit,
)
from pipeline.plan_video import plan_video
from pipeline.records import AmassRow
from schemas.quarantine import Reject
from stages.source_files import SourceFileError, SourceRoot

__all__ = ["MAX_ID_COMPONENT_BYTES", "Plan", "SPLITS", "WorkUnit", "id_problem", "plan_build", "split_unit"]

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
    units: list[WorkUnit] = []
    for split in SPLITS:
        units += make_units(source.kind, str(root), by_split[split], unit_size, first + len(units), split)
    splits.counts["units"] = len(units)
    return Plan(units, splits.rejects, splits.counts)


def _plan_amass(source: SourceSpec, cfg: BuildConfig, first: int, taken: dict) -> Plan:
    """amass: each row of HumanML3D's index.csv is a clip and its mirror (``M`` + new_name), split by
    HumanML3D's split files; ids the split files list but the index lacks are another source's."""
    root = Path(source.path)
    allowed = cfg.ingest.allowed_roots
    # amass.index, when the config names it, is trusted as named; the default one lies in the source
    index_path = Path(cfg.amass.index) if cfg.amass.index else _contained(root, "index.csv", "amass.index", allowed)
    splits = _Splits(Path(cfg.amass.splits or root), "amass", SAFE_ID, taken, allowed)
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
        for line_no, r in enumerate(csv_rows(reader, index_path), start=2):
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
                rows.append(AmassRow(rid, source_path, start, end, split, m_split))
    units = make_units("amass", str(root), rows, cfg.plan.unit_size, first)
    splits.counts["units"] = len(units)
    return Plan(units, splits.rejects, splits.counts)


def plan_build(cfg: BuildConfig) -> Plan:
    if not cfg.sources:
        raise ConfigError("sources: no source given; pass --source humanml3d=PATH or set sources in the config")
    plan = Plan([], [], Counter())
    taken: dict[str, tuple] = {}  # motion id → (split, kind, root) planned so far; a later source may not reuse one
    # motion sources first: videos name motions of the build
    for source in sorted(cfg.sources, key=lambda s: s.kind == "video"):
        first = len(plan.units)
        if source.kind == "humanml3d":
            part = _plan_split_listed(source, cfg, first, taken, SAFE_ID)
        elif source.kind == "motionx":
            part = _plan_split_listed(source, cfg, first, taken, SAFE_REL_ID)
        elif source.kind == "amass":
            part = _plan_amass(source, cfg, first, taken)
        elif source.kind == "video":
            part = plan_video(source, cfg, first, taken)
        else:  # config validation already refuses unsupported kinds
            raise ConfigError(f"sources: no planner for kind {source.kind!r}")
        plan.units += part.units
        plan.rejects += part.rejects
        plan.counters.update(part.counters)
    return plan
