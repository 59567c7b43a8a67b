"""Synthetic videos of motions: the skeleton drawn per frame (HumanML3D's kinematic chains, a floor and
the root's trail), encoded to H.264 mp4 with ffmpeg, so video and motion really correspond.

The camera looks at the person from the front (+Z, where the first frame faces), orthographic; video
frame i shows the motion at time i / fps (joints linearly interpolated from the 20-fps motion).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from schemas.motion import FPS, KINEMATIC_CHAIN
from stages.media import ffmpeg_exe

__all__ = ["render_skeleton_frames", "two_rate_times", "write_video"]

CHAIN_COLOURS = ((220, 60, 60), (60, 60, 220), (40, 40, 40), (220, 140, 40), (40, 160, 220))


def _joints_at(joints: np.ndarray, times: np.ndarray) -> np.ndarray:
    f = np.clip(times * FPS, 0, len(joints) - 1)
    lo = np.floor(f).astype(int)
    hi = np.minimum(lo + 1, len(joints) - 1)
    w = (f - lo)[:, None, None]
    return joints[lo] * (1 - w) + joints[hi] * w


def render_skeleton_frames(joints: np.ndarray, times: np.ndarray, width: int = 320, height: int = 240) -> np.ndarray:
    """(len(times), height, width, 3) uint8 RGB frames of the skeleton at the given times (seconds)."""
    from PIL import Image, ImageDraw

    pose = _joints_at(joints.astype(np.float64), times)
    span = max(np.ptp(joints[..., 0]), 1.2)
    scale = 0.8 * min(height / 2.0, width / (span + 0.6))
    cx = width / 2 - scale * (joints[..., 0].min() + joints[..., 0].max()) / 2

    def to_px(p):
        return float(cx + scale * p[0]), float(height * 0.9 - scale * p[1])

    frames = np.empty((len(times), height, width, 3), np.uint8)
    for i, p in enumerate(pose):
        img = Image.new("RGB", (width, height), (245, 245, 240))
        draw = ImageDraw.Draw(img)
        draw.line([(0, height * 0.9), (width, height * 0.9)], fill=(170, 170, 170), width=2)
        for chain, colour in zip(KINEMATIC_CHAIN, CHAIN_COLOURS, strict=True):
            draw.line([to_px(p[j]) for j in chain], fill=colour, width=4)
        for j in range(len(p)):
            x, y = to_px(p[j])
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(20, 20, 20))
        frames[i] = np.asarray(img)
    return frames


def two_rate_times(n: int, fps: float, switch_frame: int, slow_fps: float) -> np.ndarray:
    """Presentation times of a variable-frame-rate clip: ``fps`` up to ``switch_frame``, then ``slow_fps``."""
    k = np.arange(n)
    return np.where(k < switch_frame, k / fps, switch_frame / fps + (k - switch_frame) / slow_fps)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 30.0, *, rotate: int = 0,
                vfr: tuple[int, float] | None = None, crf: int = 23, gop: int | None = None) -> Path:  # fmt: skip
    """Encode RGB frames to H.264 mp4 (yuv420p). ``rotate`` stores a display rotation (clockwise degrees)
    in the file; ``vfr=(switch_frame, slow_fps)`` times the frames as ``two_rate_times`` does, making a
    variable-frame-rate file; ``gop`` puts a keyframe exactly every ``gop`` frames (no scene-cut ones)."""
    import ffmpeg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    stream = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=fps)
    out_args = {"vcodec": "libx264", "pix_fmt": "yuv420p", "crf": crf, "preset": "veryfast", "movflags": "+faststart"}
    if gop is not None:
        out_args |= {"g": gop, "keyint_min": gop, "sc_threshold": 0}
    if vfr is not None:
        k, slow = vfr
        # ffmpeg-python escapes the commas for the filter graph
        stream = stream.filter("setpts", f"(if(lt(N,{k}),N/{fps},{k}/{fps}+(N-{k})/{slow}))/TB")
        out_args |= {"fps_mode": "vfr", "video_track_timescale": 90000}
    out = ffmpeg.output(stream, str(path), **out_args)
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    if rotate:
        # input options: store the rotation (counter-clockwise degrees) rather than turning the pixels
        cmd += ["-noautorotate", "-display_rotation", str(-rotate)]
    args = ffmpeg.compile(out, cmd=cmd)
    proc = subprocess.run(args, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed writing {path}: {proc.stderr.decode(errors='replace')[-800:]}")
    return path
