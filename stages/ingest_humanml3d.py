"""Ingest of a HumanML3D tree: ``new_joint_vecs/ID.npy`` (T×263), ``new_joints/ID.npy`` (T×22×3) and
``texts/ID.txt`` into ``motion`` rows, with HumanML3D's sub-clips for captions that carry a time span.

Input batch columns: ``motion_id``, ``split``. Every id ends as ≥1 motion row (the full clip and/or its
sub-clips) or as a quarantine row; every caption line ends on a row or in quarantine (itself or through
its rejected sub-clip). Counters reconcile: ``<kind>_in == <kind>_out + <kind>_quarantined`` for clips,
subclips and captions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.motion import FEATURE_DIM, NUM_JOINTS, motion_table
from schemas.quarantine import Reject
from stages import StageResult
from stages.humanml3d_text import Caption, CaptionError, parse_caption_line, split_caption_lines

__all__ = ["INPUT_COLUMNS", "OUTPUT_TABLES", "STAGE", "ingest_humanml3d", "subclip_id"]

STAGE = "ingest_humanml3d"
SOURCE = "humanml3d"
INPUT_COLUMNS = ("motion_id", "split")
OUTPUT_TABLES = ("motion",)
FEATURES_DIR, JOINTS_DIR, TEXTS_DIR = "new_joint_vecs", "new_joints", "texts"


class _ClipError(ValueError):
    def __init__(self, reason: str, detail: str, path: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.path = reason, detail, path


def subclip_id(parent_id: str, start_frame: int, end_frame: int) -> str:
    """A sub-clip's id, derived from its parent's: stable, sortable, and unique per span."""
    return f"{parent_id}_{start_frame:04d}_{end_frame:04d}"


def _load_array(root: Path, rel: str, motion_id: str) -> np.ndarray:
    try:
        arr = np.load(root / rel, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _ClipError("unreadable_file", f"{rel}: {exc}", rel) from None
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating):
        raise _ClipError("unreadable_file", f"{rel}: not a float array (dtype {getattr(arr, 'dtype', '?')})", rel)
    return arr


def _load_clip(root: Path, motion_id: str) -> tuple[np.ndarray, np.ndarray, bytes]:
    rels = (f"{FEATURES_DIR}/{motion_id}.npy", f"{JOINTS_DIR}/{motion_id}.npy", f"{TEXTS_DIR}/{motion_id}.txt")
    present = [(root / r).is_file() for r in rels]
    if not any(present):
        raise _ClipError("no_data", f"listed in a split file but none of {', '.join(rels)} exists", rels[0])
    for rel, ok in zip(rels, present, strict=True):
        if not ok:
            raise _ClipError("missing_file", f"{rel} is missing", rel)
    features = _load_array(root, rels[0], motion_id)
    joints = _load_array(root, rels[1], motion_id)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise _ClipError("wrong_shape", f"{rels[0]} has shape {features.shape}, expected (T, {FEATURE_DIM})", rels[0])
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise _ClipError("wrong_shape", f"{rels[1]} has shape {joints.shape}, expected (T, {NUM_JOINTS}, 3)", rels[1])
    if len(features) != len(joints):
        raise _ClipError(
            "length_mismatch", f"{rels[0]} has {len(features)} frames but {rels[1]} has {len(joints)}", rels[0]
        )
    for rel, arr in ((rels[0], features), (rels[1], joints)):
        finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise _ClipError("non_finite", f"{rel}: NaN/inf in {bad.size} frame(s), first at frame {bad[0]}", rel)
    try:
        raw_text = (root / rels[2]).read_bytes()
    except OSError as exc:
        raise _ClipError("unreadable_file", f"{rels[2]}: {exc}", rels[2]) from None
    return features.astype(np.float32, copy=False), joints.astype(np.float32, copy=False), raw_text


def _length_reason(n: int, cfg, prefix: str = "") -> str | None:
    if n < cfg.min_frames:
        return f"{prefix}too_short"
    if n > cfg.max_frames:
        return f"{prefix}too_long"
    return None


def ingest_humanml3d(batch: pa.Table, cfg, *, root: str | Path) -> StageResult:
    """Read the clips named in ``batch`` from the HumanML3D tree at ``root``. ``cfg`` is the ingest
    config section (fps, min_frames, max_frames, subclips)."""
    root = Path(root)
    rows: list[dict] = []
    rejects: list[Reject] = []
    counts: Counter = Counter()

    def reject(record_id, reason, detail, split, path=None):
        counts[f"dropped_{reason}"] += 1
        rejects.append(Reject(record_id, "motion", STAGE, reason, detail, SOURCE, path, split))

    for motion_id, split in zip(batch.column("motion_id").to_pylist(), batch.column("split").to_pylist(), strict=True):
        counts["clips_in"] += 1
        feat_rel = f"{FEATURES_DIR}/{motion_id}.npy"
        try:
            features, joints, raw_text = _load_clip(root, motion_id)
        except _ClipError as exc:
            reject(motion_id, exc.reason, exc.detail, split, exc.path or feat_rel)
            counts["clips_quarantined"] += 1
            continue
        n_frames = len(features)
        reason = _length_reason(n_frames, cfg)
        if reason:
            reject(motion_id, reason, f"{n_frames} frames; limits {cfg.min_frames}–{cfg.max_frames}", split, feat_rel)
            counts["clips_quarantined"] += 1
            continue

        whole: list[Caption] = []
        spans: dict[tuple[int, int], list[Caption]] = defaultdict(list)
        text_rel = f"{TEXTS_DIR}/{motion_id}.txt"
        for line_no, raw in enumerate(split_caption_lines(raw_text), start=1):
            counts["captions_in"] += 1
            line_id = f"{motion_id}/texts:{line_no}"
            try:
                cap = parse_caption_line(raw)
                if not cap.whole_clip:
                    start_f, end_f = int(cap.start * cfg.fps), int(cap.end * cfg.fps)
                    if start_f >= n_frames or end_f > n_frames:
                        raise CaptionError(
                            "span_outside_clip",
                            f"span {cap.start:g}s..{cap.end:g}s = frames [{start_f}, {end_f}) but the clip has "
                            f"{n_frames} frames",
                        )
            except CaptionError as exc:
                reject(line_id, exc.reason, exc.detail, split, text_rel)
                counts["captions_quarantined"] += 1
                continue
            if cap.whole_clip or not cfg.subclips:
                whole.append(cap)
            else:
                spans[(start_f, end_f)].append(cap)

        mirror_of = motion_id[1:] if motion_id.startswith("M") and len(motion_id) > 1 else None
        base = {"source": SOURCE, "source_path": feat_rel, "mirror_of": mirror_of, "split": split, "fps": cfg.fps}
        n_rows_before = len(rows)
        if whole:
            rows.append(
                base | {"motion_id": motion_id, "parent_id": None, "start_frame": 0, "end_frame": n_frames,
                        "num_frames": n_frames, "features": features, "joints": joints,
                        "texts": [c.as_row() for c in whole]}
            )  # fmt: skip
            counts["captions_out"] += len(whole)
        for (start_f, end_f), caps in sorted(spans.items()):
            counts["subclips_in"] += 1
            sub_id = subclip_id(motion_id, start_f, end_f)
            reason = _length_reason(end_f - start_f, cfg, prefix="subclip_")
            if reason:
                reject(sub_id, reason, f"frames [{start_f}, {end_f}) of {motion_id}: {end_f - start_f} frames; "
                       f"limits {cfg.min_frames}–{cfg.max_frames} ({len(caps)} caption(s))", split, text_rel)  # fmt: skip
                counts["subclips_quarantined"] += 1
                counts["captions_quarantined"] += len(caps)
                continue
            rows.append(
                base | {"motion_id": sub_id, "parent_id": motion_id, "start_frame": start_f, "end_frame": end_f,
                        "num_frames": end_f - start_f, "features": features[start_f:end_f],
                        "joints": joints[start_f:end_f], "texts": [c.as_row() for c in caps]}
            )  # fmt: skip
            counts["subclips_out"] += 1
            counts["captions_out"] += len(caps)

        if len(rows) > n_rows_before:
            counts["clips_out"] += 1
        else:
            counts["clips_quarantined"] += 1
            if not whole and not spans:
                reject(motion_id, "no_valid_caption", f"{text_rel} has no usable caption line", split, text_rel)
            else:
                reject(motion_id, "no_usable_motion", "every sub-clip was rejected and no caption covers the "
                       "whole clip", split, feat_rel)  # fmt: skip

    counts["rows_out"] = len(rows)
    return StageResult(tables={"motion": motion_table(rows)}, rejects=rejects, counters=counts)
