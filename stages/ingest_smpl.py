"""Ingest of SMPL-family sources into ``motion`` rows, the way HumanML3D builds its own from AMASS:
body model → 20-fps Y-up joints → crop (index.csv) → mirror → HumanML3D features, with captions from a
texts folder when there is one. Provenance: ``source_path`` is the motion file, ``start_frame`` and
``end_frame`` the 20-fps frames of it that the clip uses.

``ingest_amass`` takes index rows (``new_name``, ``source_path``, ``start_frame``, ``end_frame``,
``split``, ``m_split``); each makes a clip and its mirror ``M<new_name>``. ``ingest_motionx`` takes
``motion_id``, ``split`` of Motion-X SMPL-X files (already cropped, mirrors stored as their own files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from stages import StageResult
from stages.clips import ClipRows
from stages.kinematics import features_to_joints, joints_to_features_batch, mirror_joints
from stages.smpl import (
    BodyModels,
    SmplFileError,
    amass_joints,
    humanml3d_crop,
    motionx_joints,
    read_amass_npz,
    read_motionx_npy,
)

__all__ = ["body_models", "ingest_amass", "ingest_motionx", "resolve_amass_file"]

_MODELS: dict[tuple, BodyModels] = {}  # one per worker process, so each model file loads once


def body_models(smpl_cfg) -> BodyModels:
    key = (smpl_cfg.model_dir, smpl_cfg.trusted_pickle, smpl_cfg.num_betas)
    if key not in _MODELS:
        _MODELS[key] = BodyModels(smpl_cfg.model_dir, smpl_cfg.trusted_pickle, smpl_cfg.num_betas)
    return _MODELS[key]


def resolve_amass_file(root: Path, source_path: str) -> Path | None:
    """index.csv names HumanML3D's intermediate ``./pose_data/<dataset>/…_poses.npy``; the AMASS file is
    ``<root>/<dataset>/…_poses.npz`` (humanact12 sources are joint ``.npy`` files kept as they are)."""
    rel = source_path.strip().removeprefix("./").removeprefix("pose_data/")
    for cand in (root / rel).with_suffix(".npz"), root / rel, (root / rel.replace(" ", "_")).with_suffix(".npz"):
        if cand.is_file():
            return cand
    return None


def _read_text(texts: Path | None, motion_id: str) -> bytes | None | Exception:
    if texts is None:
        return None
    try:
        return (texts / f"{motion_id}.txt").read_bytes()
    except OSError as exc:
        return exc


def _featurize(clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """HumanML3D features and, as its new_joints, the joints recovered from them."""
    feats = joints_to_features_batch(clips)
    return [(f, features_to_joints(f)) for f in feats]


def _add(acc: ClipRows, motion_id, split, featurized, text, *, source_path, text_path, mirror_of, offset, plain):
    if isinstance(text, Exception):
        acc.reject_clip(motion_id, "missing_file", f"{text_path}: {text.strerror or text}", split, text_path)
        return
    features, joints = featurized
    acc.add_clip(motion_id, split, features, joints, text, source_path=source_path, text_path=text_path,
                 mirror_of=mirror_of, frame_offset=offset, plain_captions=plain)  # fmt: skip


def ingest_amass(batch: pa.Table, cfg, *, root: str | Path, models: BodyModels, texts: str | None) -> StageResult:
    root, texts_dir = Path(root), (Path(texts) if texts else None)
    acc = ClipRows("ingest_amass", "amass", cfg)
    pending = []  # (rid, split, m_split, rel, first, clip) of clips that reached joints
    for row in batch.to_pylist():
        rid, split, m_split = row["new_name"], row["split"], row["m_split"]
        twins = [(i, s) for i, s in ((rid, split), ("M" + rid, m_split)) if s]
        path = resolve_amass_file(root, row["source_path"])
        try:
            if path is None:
                raise SmplFileError(f"{row['source_path']}: no such AMASS file under {root}", reason="missing_file")
            if path.suffix == ".npz":
                joints = amass_joints(read_amass_npz(path), models)
            else:  # humanact12: joint positions already (T, 24, 3)
                joints = np.load(path, allow_pickle=False)
                if joints.ndim != 3 or joints.shape[1] < 22 or joints.shape[2] != 3:
                    raise SmplFileError(f"{path.name}: joints of shape {joints.shape}, expected (T, >=22, 3)")
                joints = joints[:, :22].astype(np.float32)
            clip, (first, _stop) = humanml3d_crop(joints, row["source_path"], row["start_frame"], row["end_frame"])
            if len(clip) < 2:
                raise SmplFileError(f"the crop [{row['start_frame']}:{row['end_frame']}] leaves {len(clip)} frame(s)",
                                    reason="too_short")  # fmt: skip
        except SmplFileError as exc:
            for i, s in twins:
                acc.reject_clip(i, exc.reason, str(exc), s, row["source_path"])
            continue
        pending.append((rid, split, m_split, str(path.relative_to(root)), first, clip))

    featurized = _featurize([c for p in pending for c in (p[5], mirror_joints(p[5]))])
    for k, (rid, split, m_split, rel, first, _clip) in enumerate(pending):
        for motion_id, s, mirror_of, f in ((rid, split, None, featurized[2 * k]),
                                           ("M" + rid, m_split, rid, featurized[2 * k + 1])):  # fmt: skip
            if s:
                _add(acc, motion_id, s, f, _read_text(texts_dir, motion_id), source_path=rel,
                     text_path=f"texts/{motion_id}.txt", mirror_of=mirror_of, offset=first, plain=False)  # fmt: skip
    return acc.result()


def ingest_motionx(batch: pa.Table, cfg, *, root: str | Path, models: BodyModels, motions: str,
                   texts: str | None, fps: float) -> StageResult:  # fmt: skip
    root = Path(root)
    texts_dir = root / texts if texts else None
    acc = ClipRows("ingest_motionx", "motionx", cfg)
    pending = []
    for motion_id, split in zip(batch.column("motion_id").to_pylist(), batch.column("split").to_pylist(), strict=True):
        rel = f"{motions}/{motion_id}.npy"
        try:
            if not (root / rel).is_file():
                raise SmplFileError(f"{rel} is missing", reason="missing_file")
            joints = motionx_joints(read_motionx_npy(root / rel, fps=fps), models)
            if len(joints) < 2:
                raise SmplFileError(f"{rel}: {len(joints)} frame(s)", reason="too_short")
        except SmplFileError as exc:
            acc.reject_clip(motion_id, exc.reason, str(exc), split, rel)
            continue
        pending.append((motion_id, split, rel, joints))
    featurized = _featurize([p[3] for p in pending])
    for (motion_id, split, rel, _joints), f in zip(pending, featurized, strict=True):
        name = motion_id.rsplit("/", 1)[-1]
        mirror_of = motion_id[: len(motion_id) - len(name)] + name[1:] if name.startswith("M") and len(name) > 1 else None
        _add(acc, motion_id, split, f, _read_text(texts_dir, motion_id), source_path=rel,
             text_path=f"{texts}/{motion_id}.txt" if texts else None, mirror_of=mirror_of, offset=0, plain=True)  # fmt: skip
    return acc.result()
