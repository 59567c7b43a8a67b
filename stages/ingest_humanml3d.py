"""Ingest of a HumanML3D tree: ``new_joint_vecs/ID.npy`` (T×263), ``new_joints/ID.npy`` (T×22×3) and
``texts/ID.txt`` into ``motion`` rows, with HumanML3D's sub-clips for captions that carry a time span.

Input batch columns: ``motion_id``, ``split``. Every id ends as ≥1 motion row (the full clip and/or its
sub-clips) or as a quarantine row; every caption line ends on a row or in quarantine (itself or through
its rejected sub-clip). Counters reconcile: ``<kind>_in == <kind>_out + <kind>_quarantined`` for clips,
subclips and captions.

Every file is read through ``stages.source_files``: contained in the source root (``path_outside_root``),
``.npy`` headers checked before allocation (``truncated_file``, ``too_many_frames``, ``wrong_dtype``), caption
files capped (``text_too_large``); any other failure of one record's read is ``read_failed`` with the
exception's type, never an aborted unit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.motion import FEATURE_DIM, NUM_JOINTS
from schemas.quarantine import excerpt
from stages import StageResult
from stages.clips import ClipRows, subclip_id
from stages.source_files import SourceFileError, SourceRoot, read_npy, read_text

__all__ = ["STAGE", "ingest_humanml3d", "subclip_id"]

STAGE = "ingest_humanml3d"
SOURCE = "humanml3d"
FEATURES_DIR, JOINTS_DIR, TEXTS_DIR = "new_joint_vecs", "new_joints", "texts"


def _load_clip(src: SourceRoot, motion_id: str, cfg) -> tuple[np.ndarray, np.ndarray, bytes]:
    """The clip's arrays and caption bytes, or :class:`SourceFileError` with its reason. Every path is
    resolved and checked to lie inside the source before any of them is opened (or tested for existence)."""
    rels = (f"{FEATURES_DIR}/{motion_id}.npy", f"{JOINTS_DIR}/{motion_id}.npy", f"{TEXTS_DIR}/{motion_id}.txt")
    paths = [src.real_path(r) for r in rels]
    present = [os.path.isfile(p) for p in paths]
    if not any(present):
        raise SourceFileError("no_data", f"listed in a split file but none of {', '.join(rels)} exists", rels[0])
    for rel, ok in zip(rels, present, strict=True):
        if not ok:
            raise SourceFileError("missing_file", f"{rel} is missing", rel)
    features = read_npy(paths[0], rels[0], max_frames=cfg.max_file_frames)
    joints = read_npy(paths[1], rels[1], max_frames=cfg.max_file_frames)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise SourceFileError("wrong_shape", f"{rels[0]} has shape {features.shape}, expected (T, {FEATURE_DIM})", rels[0])
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise SourceFileError("wrong_shape", f"{rels[1]} has shape {joints.shape}, expected (T, {NUM_JOINTS}, 3)", rels[1])
    if len(features) != len(joints):
        raise SourceFileError(
            "length_mismatch", f"{rels[0]} has {len(features)} frames but {rels[1]} has {len(joints)}", rels[0]
        )
    if len(features) == 0:
        raise SourceFileError("too_short", f"{rels[0]} has 0 frames", rels[0])
    for rel, arr in ((rels[0], features), (rels[1], joints)):
        finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise SourceFileError("non_finite", f"{rel}: NaN/inf in {bad.size} frame(s), first at frame {bad[0]}", rel)
    raw_text = read_text(paths[2], rels[2], max_bytes=cfg.max_text_bytes)
    return features.astype(np.float32, copy=False), joints.astype(np.float32, copy=False), raw_text


def ingest_humanml3d(batch: pa.Table, cfg, *, root: str | Path) -> StageResult:
    """Read the clips named in ``batch`` from the HumanML3D tree at ``root``. ``cfg`` is the ingest
    config section (fps, min_frames, max_frames, subclips)."""
    src = SourceRoot(root, cfg.allowed_roots)
    acc = ClipRows(STAGE, SOURCE, cfg)
    for motion_id, split in zip(batch.column("motion_id").to_pylist(), batch.column("split").to_pylist(), strict=True):
        feat_rel = f"{FEATURES_DIR}/{motion_id}.npy"
        try:
            features, joints, raw_text = _load_clip(src, motion_id, cfg)
        except SourceFileError as exc:
            acc.reject_clip(motion_id, exc.reason, exc.detail, split, exc.path or feat_rel)
            continue
        except Exception as exc:  # one record's read or decode, whatever fails (MemoryError and OSError included)
            acc.reject_clip(motion_id, "read_failed", f"{type(exc).__name__}: {excerpt(str(exc))}", split, feat_rel)
            continue
        mirror_of = motion_id[1:] if motion_id.startswith("M") and len(motion_id) > 1 else None
        acc.add_clip(motion_id, split, features, joints, raw_text, source_path=feat_rel,
                     text_path=f"{TEXTS_DIR}/{motion_id}.txt", mirror_of=mirror_of)  # fmt: skip
    return acc.result()
