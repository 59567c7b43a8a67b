"""Motion (20 fps) ↔ video (its own, possibly variable, frame rate) alignment.

Motion time ``m`` of a video time ``t`` is ``m = (t - segment_start) + offset``. The common segment is
where both exist; frames are sampled inside it and each maps to the motion frame nearest its time, so a
frame is never more than half a motion frame away from the motion it is paired with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.media import MediaError

__all__ = ["Alignment", "common_segment", "motion_frames_for"]


@dataclass(frozen=True)
class Alignment:
    video_start: float  # seconds in the video file
    video_end: float
    offset: float  # motion time at video_start
    overlap: float  # seconds both cover


def common_segment(seg_start: float, seg_end: float, motion_seconds: float, offset: float = 0.0,
                   tolerance: float = 0.5) -> Alignment:  # fmt: skip
    """Crop a video segment [seg_start, seg_end) and a motion of ``motion_seconds`` to what both cover.
    Raises ``MediaError('length_mismatch')`` when their lengths differ by more than ``tolerance``."""
    video_len = seg_end - seg_start
    if abs(video_len - motion_seconds) > tolerance:
        raise MediaError("length_mismatch", f"video segment {video_len:.2f} s vs motion {motion_seconds:.2f} s "
                         f"(tolerance {tolerance:g} s)")  # fmt: skip
    start = seg_start + max(0.0, -offset)
    end = min(seg_end, seg_start + (motion_seconds - offset))
    if end <= start:
        raise MediaError("no_overlap", f"video [{seg_start:g}, {seg_end:g}) s and motion do not overlap (offset {offset:g} s)")
    return Alignment(start, end, offset + (start - seg_start), end - start)


def motion_frames_for(times: np.ndarray, alignment: Alignment, motion_frames: int, motion_fps: float = 20.0) -> np.ndarray:
    """The motion frame of each video time (seconds in the file)."""
    m = (np.asarray(times) - alignment.video_start) + alignment.offset
    return np.clip(np.rint(m * motion_fps), 0, motion_frames - 1).astype(np.int32)
