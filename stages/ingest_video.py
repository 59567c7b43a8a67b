"""Ingest of a video source: probe each file (ffprobe via ffmpeg-python), sample and decode frames
(decord, ffmpeg fallback), align to its motion, and — where a video comes with per-frame SMPL-X
parameters (Motion-X style) — build that motion through the kinematics stage and link the two.

Input batch columns: ``video_id``, ``path`` (relative to the source root), ``captions`` (list), ``split``,
``start``/``end`` (seconds or null), ``offset`` (motion time at ``start``), ``motion_id``,
``motion_frames`` (frames of the linked motion, or null), ``smpl`` (per-frame SMPL-X ``.npy`` or null).

A video's ``path`` and ``smpl`` must resolve inside the source root (or ``ingest.allowed_roots``):
``../x.mp4``, an absolute path elsewhere, or a symlink out is ``path_outside_root`` and is never opened. The
probe's frame size, frame count and duration are checked against ``frames.max_*`` before any decode
(``too_many_pixels``, ``too_many_video_frames``, ``video_too_long``). Any other failure of one video is
``read_failed`` with the exception type, never an aborted unit.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

from schemas.quarantine import Reject, excerpt
from schemas.video import VIDEO_SCHEMA
from stages import StageResult
from stages.align import common_segment, motion_frames_for
from stages.clips import ClipRows
from stages.frames import decode_frames, frame_times, sample_fps_frames, sample_uniform_frames
from stages.media import MediaError, check_video_caps, ffprobe_exe, probe_video
from stages.smpl import BodyModelError
from stages.source_files import SourceFileError, SourceRoot

__all__ = ["STAGE", "ingest_video"]

STAGE = "ingest_video"
MOTION_FPS = 20.0


def _smpl_motion(path: Path, fps: float, models, max_frames: int):
    from stages.kinematics import features_to_joints, joints_to_features
    from stages.smpl import SmplFileError, motionx_joints, read_motionx_npy

    try:
        joints = motionx_joints(read_motionx_npy(path, fps=fps, max_frames=max_frames), models)
    except SmplFileError as exc:  # a cap or a header that lies keeps its own reason; anything else is unreadable
        reason = exc.reason if exc.reason in ("too_many_frames", "truncated_file", "wrong_dtype") else "unreadable_smpl"
        raise MediaError(reason, str(exc)) from None
    if len(joints) < 2:
        raise MediaError("unreadable_smpl", f"{path.name}: {len(joints)} frame(s)")
    features = joints_to_features(joints)
    return features, features_to_joints(features)


def _video_row(rec: dict, info, sampled, segment: tuple[float, float], alignment, motion_frames) -> dict:
    """The ``video`` row of a decoded video: its header, the segment used, the sampled frames and, when it is
    aligned to a motion, the motion frame shown at each sampled frame."""
    return {
        "video_id": rec["video_id"], "source": "video", "source_path": rec["path"], "split": rec["split"],
        "fps": info.fps, "variable_frame_rate": info.variable_frame_rate, "duration": info.duration,
        "num_frames": info.num_frames, "orig_width": info.width, "orig_height": info.height,
        "rotation": info.rotation, "codec": info.codec, "width": sampled.width, "height": sampled.height,
        "segment_start": segment[0], "segment_end": segment[1],
        "frame_indices": sampled.indices, "frame_timestamps": sampled.timestamps, "frames": sampled.jpegs,
        "decoder": sampled.decoder, "captions": list(rec["captions"] or []),
        "motion_id": rec["motion_id"] if alignment else None,
        "motion_frame_indices": motion_frames_for(sampled.timestamps, alignment, motion_frames).tolist()
        if alignment else None,
        "overlap_seconds": alignment.overlap if alignment else None,
        "offset_seconds": alignment.offset if alignment else None,
    }  # fmt: skip


def ingest_video(batch: pa.Table, frames_cfg, align_cfg, ingest_cfg, *, root: str | Path, models=None,
                 smpl_fps: float | None = None) -> StageResult:  # fmt: skip
    src = SourceRoot(root, ingest_cfg.allowed_roots)
    rows, rejects, counts = [], [], Counter()
    motions = ClipRows(STAGE, "video", ingest_cfg)  # motions built from per-frame SMPL-X files
    if batch.num_rows:
        ffprobe_exe()  # a missing ffprobe is the installation's problem, not each video's: it stops the unit here
    for rec in batch.to_pylist():
        counts["videos_in"] += 1
        vid, split, rel = rec["video_id"], rec["split"], rec["path"]
        try:
            path = src.resolve(rel)  # both files checked before either is opened
            smpl_path = src.resolve(rec["smpl"]) if rec["smpl"] else None
            info = probe_video(path)
            check_video_caps(info, max_pixels=frames_cfg.max_pixels, max_frames=frames_cfg.max_video_frames,
                             max_seconds=frames_cfg.max_video_seconds)  # fmt: skip
            times, reader = frame_times(path, info)
            start = float(rec["start"] or 0.0)
            end = float(rec["end"]) if rec["end"] is not None else float(times[-1] + 1.0 / info.fps)
            motion_id, motion_frames = rec["motion_id"], rec["motion_frames"]
            smpl_motion = None
            if smpl_path is not None:
                smpl_motion = _smpl_motion(smpl_path, smpl_fps or info.fps, models, ingest_cfg.max_file_frames)
                motion_frames = len(smpl_motion[0])
            alignment = None
            if motion_frames is not None:
                alignment = common_segment(start, end, motion_frames / MOTION_FPS, float(rec["offset"] or 0.0),
                                           align_cfg.tolerance_seconds)  # fmt: skip
                start, end = alignment.video_start, alignment.video_end
            if frames_cfg.mode == "fps":
                idx = sample_fps_frames(times, frames_cfg.sample_fps, start, end)
            else:
                idx = sample_uniform_frames(times, frames_cfg.num_frames, start, end)
            sampled = decode_frames(path, info, idx, times, reader=reader, short_side=frames_cfg.short_side,
                                    quality=frames_cfg.jpeg_quality)  # fmt: skip
        except BodyModelError:  # the config's body models, not this video: the unit stops, naming them
            raise
        except Exception as exc:  # MediaError / SourceFileError carry their reason; anything else is read_failed
            reason = getattr(exc, "reason", None) if isinstance(exc, (MediaError, SourceFileError)) else None
            detail = exc.detail if reason else f"{type(exc).__name__}: {excerpt(str(exc))}"
            reason = reason or "read_failed"
            counts["videos_quarantined"] += 1
            counts[f"dropped_{reason}"] += 1
            rejects.append(Reject(vid, "video", STAGE, reason, detail, "video", rel, split))
            continue
        if smpl_motion is not None:
            features, joints = smpl_motion
            motions.add_clip(motion_id, split, features, joints, ("\n".join(rec["captions"]) + "\n").encode()
                             if rec["captions"] else None, source_path=rec["smpl"], plain_captions=True)  # fmt: skip
        counts["videos_out"] += 1
        counts[f"decoded_{sampled.decoder}"] += 1
        rows.append(_video_row(rec, info, sampled, (start, end), alignment, motion_frames))
    tables = {"video": pa.Table.from_pylist(rows, schema=VIDEO_SCHEMA)}
    if motions.counts["clips_in"]:
        built = motions.result()
        tables["motion"] = built.tables["motion"]
        rejects += built.rejects
        counts.update(built.counters)
    return StageResult(tables=tables, rejects=rejects, counters=counts)
