"""The video source's plan: its metadata rows (JSONL or CSV, each untrusted) checked one by one into typed
``VideoRow`` records, or quarantine rows naming the line and the reason; a video that names a motion takes
that motion's split and, when the planner can read it, its length."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

from pipeline.config import BuildConfig, ConfigError, SourceSpec
from pipeline.plan_units import SAFE_REL_ID, SPLITS, Plan, csv_rows, id_problem, make_units
from pipeline.records import VideoRow
from schemas.quarantine import Reject, excerpt
from stages.humanml3d_text import CaptionError, clean_caption
from stages.source_files import SourceRoot, npy_shape

__all__ = ["plan_video"]

_STR_FIELDS = ("path", "video_id", "motion_id", "smpl", "split")


def _read_metadata(path: Path) -> list[tuple[str, dict | None, tuple[str, str] | None]]:
    """Video metadata rows as (label, row, problem): JSONL (captions a list) or CSV (captions separated by
    ' | '). ``label`` names the line (``metadata.jsonl:7``); a line that is not UTF-8 JSON, or not a JSON
    object, has ``row`` None and ``problem`` (reason, detail) — one quarantine row, the rest still build."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            reader = csv.DictReader(fh)
            rows = []
            for r in csv_rows(reader, path):
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




def _check_row(label: str, meta: dict | None, problem, cfg: BuildConfig, taken: dict, seen: set, named: dict):
    """The checked fields and times of one metadata row, or _BadRow. ``named`` gets the row's video id, path
    and split as far as they are known, for the quarantine row should the row be refused."""
    if meta is not None:  # a name for the quarantine row, should the row be refused
        guess = meta.get("video_id") or (_default_video_id(meta["path"]) if isinstance(meta.get("path"), str) else None)
        named["vid"] = guess if isinstance(guess, str) and guess else label
    if problem:
        raise _BadRow(*problem)
    f = _video_fields(meta, cfg)
    named.update(vid=f["video_id"], rel=f["path"] or None, split=f["split"])
    vid, motion_id, smpl = f["video_id"], f["motion_id"], f["smpl"]
    if not named["rel"]:
        raise _BadRow("invalid_id", "row without a usable path")
    why = id_problem(vid, SAFE_REL_ID)
    if why:
        raise _BadRow("invalid_id", why)
    if vid in seen:
        raise _BadRow("duplicate_id", "another metadata row has this video id")
    if motion_id and not smpl and motion_id not in taken:
        raise _BadRow("unknown_motion", f"motion '{excerpt(motion_id)}' is not in this build")
    if smpl and (motion_id or vid) in taken:
        raise _BadRow("duplicate_id", f"motion id '{excerpt(motion_id or vid)}' is already taken")
    times = _times(meta)
    named["split"] = f["split"] or (taken[motion_id][0] if motion_id in taken else None)
    if named["split"] not in SPLITS:
        raise _BadRow("no_split", f"split '{excerpt(str(named['split']))}': give a split, or a motion_id whose split "
                      "is known")  # fmt: skip
    return f, times


def _planned_row(f: dict, times: dict, split: str, root: Path, cfg: BuildConfig, taken: dict, counts: Counter):
    """The ``VideoRow`` of a checked row: its motion's length when the planner can read it (else the video is
    kept unaligned), or the motion its SMPL-X parameters make."""
    vid, motion_id, smpl = f["video_id"], f["motion_id"], f["smpl"]
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
    return VideoRow(vid, f["path"], f["captions"], split, times["start"], times["end"], times["offset"], motion_id,
                    frames, smpl)  # fmt: skip


def plan_video(source: SourceSpec, cfg: BuildConfig, first: int, taken: dict) -> Plan:
    """video: one record per metadata row; a video that names a motion takes that motion's split."""
    root = Path(source.path)
    counts: Counter = Counter()
    rejects: list[Reject] = []
    seen: set[str] = set()
    rows = []
    for label, meta, problem in _read_metadata(root / cfg.video.metadata):
        counts["videos_listed"] += 1
        named = {"vid": label, "rel": None, "split": None}
        try:
            f, times = _check_row(label, meta, problem, cfg, taken, seen, named)
        except _BadRow as bad:
            counts["videos_quarantined"] += 1
            counts[f"dropped_{bad.reason}"] += 1
            split = named["split"]
            rejects.append(Reject(named["vid"] or label, "video", "plan", bad.reason, bad.detail, "video", named["rel"],
                                  split if isinstance(split, str) else None))  # fmt: skip
            continue
        seen.add(f["video_id"])
        rows.append(_planned_row(f, times, named["split"], root, cfg, taken, counts))
    units = make_units("video", str(root), rows, cfg.plan.unit_size, first)
    counts["units"] = len(units)
    return Plan(units, rejects, counts)
