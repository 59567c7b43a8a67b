"""Ingest of a HumanML3D tree: ``new_joint_vecs/ID.npy`` (T×263), ``new_joints/ID.npy`` (T×22×3) and
``texts/ID.txt`` into ``motion`` rows, with HumanML3D's sub-clips for captions that carry a time span.

Input batch columns: ``motion_id``, ``split``. Every id ends as ≥1 motion row (the full clip and/or its
sub-clips) or as a quarantine row; every caption line ends on a row or in quarantine (itself or through
its rejected sub-clip). Counters reconcile: ``<kind>_in == <kind>_out + <kind>_quarantined`` for clips,
subclips and captions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.motion import FEATURE_DIM, NUM_JOINTS
from stages import StageResult
from stages.clips import ClipRows, subclip_id

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


def ingest_humanml3d(batch: pa.Table, cfg, *, root: str | Path) -> StageResult:
    """Read the clips named in ``batch`` from the HumanML3D tree at ``root``. ``cfg`` is the ingest
    config section (fps, min_frames, max_frames, subclips)."""
    root = Path(root)
    acc = ClipRows(STAGE, SOURCE, cfg)
    for motion_id, split in zip(batch.column("motion_id").to_pylist(), batch.column("split").to_pylist(), strict=True):
        feat_rel = f"{FEATURES_DIR}/{motion_id}.npy"
        try:
            features, joints, raw_text = _load_clip(root, motion_id)
        except _ClipError as exc:
            acc.reject_clip(motion_id, exc.reason, exc.detail, split, exc.path or feat_rel)
            continue
        mirror_of = motion_id[1:] if motion_id.startswith("M") and len(motion_id) > 1 else None
        acc.add_clip(motion_id, split, features, joints, raw_text, source_path=feat_rel,
                     text_path=f"{TEXTS_DIR}/{motion_id}.txt", mirror_of=mirror_of)  # fmt: skip
    return acc.result()
