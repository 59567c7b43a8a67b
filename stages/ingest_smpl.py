"""Ingest of SMPL-family sources into ``motion`` rows, the way HumanML3D builds its own from AMASS:
body model → 20-fps Y-up joints → crop (index.csv) → mirror → HumanML3D features, with captions from a
texts folder when there is one. Provenance: ``source_path`` is the motion file, ``start_frame`` and
``end_frame`` the 20-fps frames of it that the clip uses.

``ingest_amass`` takes index rows (``new_name``, ``source_path``, ``start_frame``, ``end_frame``,
``split``, ``m_split``); each makes a clip and its mirror ``M<new_name>``. ``ingest_motionx`` takes
``motion_id``, ``split`` of Motion-X SMPL-X files (already cropped, mirrors stored as their own files).

Files are contained in their root (the source for motion files, ``amass.texts`` for AMASS captions; plus
``ingest.allowed_roots``): an ``index.csv`` ``source_path`` of ``../x`` or ``/etc/x`` is ``path_outside_root``.
Any failure of one record's read, body model or features is a quarantine row (``read_failed`` with the
exception type when nothing more specific says why), never an aborted unit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.quarantine import excerpt
from stages import StageResult
from stages.clips import ClipRows
from stages.kinematics import features_to_joints, joints_to_features_batch, mirror_joints
from stages.smpl import (
    BodyModelError,
    BodyModels,
    SmplFileError,
    amass_joints,
    humanml3d_crop,
    motionx_joints,
    read_amass_npz,
    read_motionx_npy,
)
from stages.source_files import SourceFileError, SourceRoot, read_npy, read_text

__all__ = ["body_models", "ingest_amass", "ingest_motionx", "resolve_amass_file"]

_MODELS: dict[tuple, BodyModels] = {}  # one per worker process, so each model file loads once


def body_models(smpl_cfg) -> BodyModels:
    key = (smpl_cfg.model_dir, smpl_cfg.trusted_pickle, smpl_cfg.num_betas)
    if key not in _MODELS:
        _MODELS[key] = BodyModels(smpl_cfg.model_dir, smpl_cfg.trusted_pickle, smpl_cfg.num_betas)
    return _MODELS[key]


def resolve_amass_file(root: Path | SourceRoot, source_path: str) -> Path | None:
    """index.csv names HumanML3D's intermediate ``./pose_data/<dataset>/…_poses.npy``; the AMASS file is
    ``<root>/<dataset>/…_poses.npz`` (humanact12 sources are joint ``.npy`` files kept as they are). Each
    candidate is checked to lie inside the root before it is looked at (:class:`SourceFileError`
    ``path_outside_root`` otherwise)."""
    found = _find_amass_file(root if isinstance(root, SourceRoot) else SourceRoot(root), source_path)
    return found[1] if found else None


def _find_amass_file(src: SourceRoot, source_path: str) -> tuple[str, Path] | None:
    """(the file as named under the root, its real path): the name is what rows record as provenance,
    whatever symlinks lead from it."""
    rel = source_path.strip().removeprefix("./").removeprefix("pose_data/")
    for cand in _with_npz(rel), rel, _with_npz(rel.replace(" ", "_")):
        real = src.resolve(cand)
        if real.is_file():
            return os.path.normpath(cand), real
    return None


def _with_npz(rel: str) -> str:
    head, dot, ext = rel.rpartition(".")
    return f"{head}.npz" if dot and "/" not in ext else f"{rel}.npz"


def _read_text(texts: SourceRoot | None, motion_id: str, max_bytes: int) -> bytes | None | SourceFileError:
    """A clip's caption bytes; None when the source has no texts; the error when its file is unusable."""
    if texts is None:
        return None
    rel = f"{motion_id}.txt"
    try:
        path = texts.resolve(rel)
        if not path.is_file():
            return SourceFileError("missing_file", f"{rel} is missing from {texts.what}", rel)
        return read_text(path, rel, max_bytes=max_bytes)
    except SourceFileError as exc:
        return exc


def _featurize(clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray] | Exception]:
    """HumanML3D features and, as its new_joints, the joints recovered from them; batched, and clip by clip
    should the batch fail, so that a clip that breaks the maths is one failure (its exception), not the
    unit's."""
    try:
        feats = joints_to_features_batch(clips)
        return [(f, features_to_joints(f)) for f in feats]
    except Exception:  # find the clip(s) that fail, alone
        out = []
        for clip in clips:
            try:
                f = joints_to_features_batch([clip])[0]
                out.append((f, features_to_joints(f)))
            except Exception as exc:
                out.append(exc)
        return out


def _failed(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {excerpt(str(exc))}"


def _add(acc: ClipRows, motion_id, split, featurized, text, *, source_path, text_path, mirror_of, offset, plain):
    if isinstance(text, SourceFileError):
        acc.reject_clip(motion_id, text.reason, text.detail, split, text_path)
        return
    if isinstance(featurized, Exception):
        acc.reject_clip(motion_id, "read_failed", f"features: {_failed(featurized)}", split, source_path)
        return
    features, joints = featurized
    acc.add_clip(motion_id, split, features, joints, text, source_path=source_path, text_path=text_path,
                 mirror_of=mirror_of, frame_offset=offset, plain_captions=plain)  # fmt: skip


def _amass_clip(src: SourceRoot, row: dict, models: BodyModels, max_frames: int):
    """(the file's path relative to the root, first frame, cropped 20-fps joints) of one index row."""
    found = _find_amass_file(src, row["source_path"])
    if found is None:
        raise SmplFileError(f"{row['source_path']}: no such AMASS file under the source", reason="missing_file")
    rel, path = found
    if path.suffix == ".npz":
        joints = amass_joints(read_amass_npz(path, max_frames), models)
    else:  # humanact12: joint positions already (T, 24, 3)
        try:
            joints = read_npy(path, rel, max_frames=max_frames)
        except SourceFileError as exc:
            raise SmplFileError(exc.detail, reason=exc.reason) from None
        if joints.ndim != 3 or joints.shape[1] < 22 or joints.shape[2] != 3:
            raise SmplFileError(f"{path.name}: joints of shape {joints.shape}, expected (T, >=22, 3)")
        if not np.isfinite(joints).all():
            raise SmplFileError(f"{path.name}: NaN/inf in the joints", reason="non_finite")
        joints = joints[:, :22].astype(np.float32)
    clip, (first, _stop) = humanml3d_crop(joints, row["source_path"], row["start_frame"], row["end_frame"])
    if len(clip) < 2:
        raise SmplFileError(f"the crop [{row['start_frame']}:{row['end_frame']}] leaves {len(clip)} frame(s)",
                            reason="too_short")  # fmt: skip
    return rel, first, clip


def ingest_amass(batch: pa.Table, cfg, *, root: str | Path, models: BodyModels, texts: str | None) -> StageResult:
    src = SourceRoot(root, cfg.allowed_roots)
    texts_src = SourceRoot(texts, cfg.allowed_roots, what="amass.texts") if texts else None
    acc = ClipRows("ingest_amass", "amass", cfg)
    pending = []  # (rid, split, m_split, rel, first, clip) of clips that reached joints
    for row in batch.to_pylist():
        rid, split, m_split = row["new_name"], row["split"], row["m_split"]
        twins = [(i, s) for i, s in ((rid, split), ("M" + rid, m_split)) if s]
        try:
            rel, first, clip = _amass_clip(src, row, models, cfg.max_file_frames)
        except (SmplFileError, SourceFileError) as exc:
            reason, detail = exc.reason, getattr(exc, "detail", str(exc))
        except BodyModelError:  # the config's body models, not this record: the unit stops, naming them
            raise
        except Exception as exc:  # one row's read, body model or crop, whatever fails (MemoryError, OSError…)
            reason, detail = "read_failed", _failed(exc)
        else:
            pending.append((rid, split, m_split, rel, first, clip))
            continue
        for i, s in twins:
            acc.reject_clip(i, reason, detail, s, row["source_path"])

    featurized = _featurize([c for p in pending for c in (p[5], mirror_joints(p[5]))])
    for k, (rid, split, m_split, rel, first, _clip) in enumerate(pending):
        for motion_id, s, mirror_of, f in ((rid, split, None, featurized[2 * k]),
                                           ("M" + rid, m_split, rid, featurized[2 * k + 1])):  # fmt: skip
            if s:
                _add(acc, motion_id, s, f, _read_text(texts_src, motion_id, cfg.max_text_bytes), source_path=rel,
                     text_path=f"texts/{motion_id}.txt", mirror_of=mirror_of, offset=first, plain=False)  # fmt: skip
    return acc.result()


def ingest_motionx(batch: pa.Table, cfg, *, root: str | Path, models: BodyModels, motions: str,
                   texts: str | None, fps: float) -> StageResult:  # fmt: skip
    src = SourceRoot(root, cfg.allowed_roots)
    texts_src = src if texts else None  # Motion-X captions lie in the source too (texts/semantic_label)
    acc = ClipRows("ingest_motionx", "motionx", cfg)
    pending = []
    for motion_id, split in zip(batch.column("motion_id").to_pylist(), batch.column("split").to_pylist(), strict=True):
        rel = f"{motions}/{motion_id}.npy"
        try:
            path = src.resolve(rel)
            if not path.is_file():
                raise SmplFileError(f"{rel} is missing", reason="missing_file")
            joints = motionx_joints(read_motionx_npy(path, fps=fps, max_frames=cfg.max_file_frames), models)
            if len(joints) < 2:
                raise SmplFileError(f"{rel}: {len(joints)} frame(s)", reason="too_short")
        except (SmplFileError, SourceFileError) as exc:
            acc.reject_clip(motion_id, exc.reason, getattr(exc, "detail", str(exc)), split, rel)
            continue
        except BodyModelError:  # the config's body models, not this record: the unit stops, naming them
            raise
        except Exception as exc:  # one record's read or body model, whatever fails
            acc.reject_clip(motion_id, "read_failed", _failed(exc), split, rel)
            continue
        pending.append((motion_id, split, rel, joints))
    featurized = _featurize([p[3] for p in pending])
    for (motion_id, split, rel, _joints), f in zip(pending, featurized, strict=True):
        name = motion_id.rsplit("/", 1)[-1]
        mirror_of = motion_id[: len(motion_id) - len(name)] + name[1:] if name.startswith("M") and len(name) > 1 else None
        _add(acc, motion_id, split, f, _read_text(texts_src, f"{texts}/{motion_id}" if texts else motion_id,
                                                  cfg.max_text_bytes), source_path=rel,
             text_path=f"{texts}/{motion_id}.txt" if texts else None, mirror_of=mirror_of, offset=0, plain=True)  # fmt: skip
    return acc.result()
