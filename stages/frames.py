"""Frame sampling: pick K frames of a clip segment (uniform in time, or at a given rate), decode them
with decord (ffmpeg as the fallback), turn them upright per the file's rotation, resize to a short
side, and encode JPEG. Times are the frames' real presentation timestamps, so variable-frame-rate
files sample correctly.

Memory stays bounded whatever the sampling asks for: decord decodes ``DECODE_CHUNK`` frames at a time and
each is JPEG-encoded before the next chunk; ffmpeg's frames are read from its pipe one at a time. Frames too
large to decode at all are refused before this module sees them (``frames.max_pixels``, ``stages.media``).

Decoding costs what the seeks cost: decord's ``get_batch`` already seeks to the keyframe before a frame in
another GOP and decodes forward (without colour conversion) within one, so each sample costs its distance
from its keyframe. What it does not do is stop: its decoding thread reads ahead of the frames asked for and
goes on decoding (and colour-converting, and holding) the rest of the file after ``get_batch`` returns, for
as long as the reader lives. So the reader is parked after each chunk whose successor needs a seek anyway,
and after the last one (:func:`_park`).
"""

from __future__ import annotations

import io
import subprocess
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.media import MediaError, VideoInfo, ffmpeg_exe, ffprobe_exe

__all__ = ["DECODE_CHUNK", "SampledFrames", "decode_frames", "frame_times", "sample_fps_frames", "sample_uniform_frames",
           "target_size"]  # fmt: skip

DECODE_CHUNK = 8  # frames decord decodes at once (at native size): the default frames.num_frames in one go


@dataclass
class SampledFrames:
    indices: list[int]
    timestamps: list[float]  # seconds, presentation time of each sampled frame
    jpegs: list[bytes]
    width: int  # of the stored (upright, resized) frames
    height: int
    decoder: str  # decord | ffmpeg


def sample_uniform_frames(times: np.ndarray, k: int, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """Indices of ``k`` frames spread uniformly in time over [start, end): the frame nearest to each of
    ``k`` evenly spaced instants from the segment's first frame to its last (repeats allowed when the
    segment has fewer than ``k`` frames)."""
    inside = np.flatnonzero((times >= start - 1e-6) & (times < (np.inf if end is None else end) - 1e-6))
    if len(inside) == 0:
        raise MediaError("empty_segment", f"no frame in [{start:g}, {end if end is not None else 'end'}) s")
    targets = np.linspace(times[inside[0]], times[inside[-1]], k)
    return inside[np.abs(times[inside][None, :] - targets[:, None]).argmin(axis=1)]


def sample_fps_frames(times: np.ndarray, fps: float, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """One frame every 1/fps seconds over [start, end) (the nearest frame to each instant, no repeats)."""
    inside = np.flatnonzero((times >= start - 1e-6) & (times < (np.inf if end is None else end) - 1e-6))
    if len(inside) == 0:
        raise MediaError("empty_segment", f"no frame in [{start:g}, {end if end is not None else 'end'}) s")
    targets = np.arange(times[inside[0]], times[inside[-1]] + 1e-9, 1.0 / fps)
    picked = inside[np.abs(times[inside][None, :] - targets[:, None]).argmin(axis=1)]
    return np.unique(picked)


def target_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(w, h) with the shorter side ``short_side`` and the aspect kept, both even (codec-friendly)."""
    s = short_side / min(width, height)
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


def frame_times(path: str | Path, info: VideoInfo):
    """Presentation time of every frame, and the decord reader that gave them (None where decord cannot
    index the file and ffprobe's packet times are used instead)."""
    try:
        import decord

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        times = vr.get_frame_timestamp(np.arange(len(vr)))[:, 0].astype(np.float64)
        if len(times) and np.all(np.diff(times) > 0):
            return times, vr
    except Exception:  # decord raises its own DECORDError (and RuntimeError) for files it cannot index
        pass
    out = subprocess.run([ffprobe_exe(), "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True)  # fmt: skip
    pts = sorted(float(x) for x in out.stdout.split() if x.strip() not in ("", "N/A"))
    if out.returncode or not pts:
        raise MediaError("undecodable", f"{Path(path).name}: no frame timestamps ({out.stderr.strip()[-200:]})")
    times = np.array(pts) - pts[0]
    return times, None


def _jpeg(frame: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _upright(frames: np.ndarray, info: VideoInfo) -> np.ndarray:
    """decord applies the display rotation itself (checked against ffmpeg for 90/180/270); should a build
    not, its frames come out in the stored shape and are turned here."""
    disp_w, disp_h = info.display_size
    if info.rotation in (90, 270) and frames.shape[1:3] == (info.height, info.width) != (disp_h, disp_w):
        frames = np.rot90(frames, k=-(info.rotation // 90), axes=(1, 2))
    return frames


def _resized(frame: np.ndarray, size_display) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize(size_display, Image.BILINEAR))


def _park(reader) -> bool:
    """Stop decord's decoding thread. Its reader runs ahead of what was asked (it reads packets while it
    waits for a frame) and its thread decodes whatever it was given, the rest of the file if nothing stops
    it: a core and, at native size, hundreds of MB held. A seek stops and flushes its decoder; frame 0 is the
    position decord itself rewinds to before every accurate seek, so the next ``get_batch`` finds the reader
    in the state its own seeking expects. False when the file refuses the seek (the reader's position is
    then unknown)."""
    try:
        reader.seek(0)
    except RuntimeError:  # decord's "Failed to seek to frame 0"
        return False
    return True


def _keyframe_at_or_before(keys: list[int], frame: int) -> int:
    return keys[bisect_right(keys, frame) - 1] if keys and frame >= keys[0] else 0


def _seek_follows(keys: list[int], position: int, following: int) -> bool:
    """Whether decord, standing before frame ``position``, will seek to reach frame ``following`` rather
    than decode on: it seeks backwards, and forwards into another GOP (its ``SeekAccurate``)."""
    if following == position:
        return False
    return following < position or _keyframe_at_or_before(keys, following) != _keyframe_at_or_before(keys, position)


def _jpegs_decord(reader, indices, info: VideoInfo, size_display, quality: int) -> list[bytes]:
    indices = [int(i) for i in indices]
    keys = sorted(int(k) for k in reader.get_key_indices())
    jpegs = []
    try:
        for k in range(0, len(indices), DECODE_CHUNK):
            chunk = indices[k : k + DECODE_CHUNK]
            frames = _upright(reader.get_batch(chunk).asnumpy(), info)
            following = indices[k + DECODE_CHUNK] if k + DECODE_CHUNK < len(indices) else None
            position = list(dict.fromkeys(chunk))[-1] + 1  # after the last frame decord decoded (repeats are copies)
            if following is None or _seek_follows(keys, position, following):
                # between chunks a refused seek would leave the reader lost: decode the clip with ffmpeg
                if not _park(reader) and following is not None:
                    raise MediaError("unseekable", "decord cannot seek this file")
            jpegs += [_jpeg(_resized(f, size_display), quality) for f in frames]
    finally:
        _park(reader)
    return jpegs


def _jpegs_ffmpeg(path, indices, size_display, quality: int) -> list[bytes]:
    """ffmpeg picks the frames by number, applies the rotation itself (autorotate) and scales; each frame is
    read from the pipe and encoded before the next (stderr goes to a file: a pipe could fill and stall it)."""
    import tempfile

    import ffmpeg

    w, h = size_display
    frame_bytes = w * h * 3
    wanted = sorted(set(map(int, indices)))
    select = "+".join(f"eq(n,{i})" for i in wanted)
    stream = ffmpeg.input(str(path)).filter("select", select).filter("scale", w, h)
    args = ffmpeg.compile(ffmpeg.output(stream, "pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough"),
                          cmd=[ffmpeg_exe(), "-hide_banner", "-loglevel", "error"])  # fmt: skip
    by_index: dict[int, bytes] = {}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            for i in wanted:
                raw = proc.stdout.read(frame_bytes)
                if len(raw) != frame_bytes:
                    break
                by_index[i] = _jpeg(np.frombuffer(raw, np.uint8).reshape(h, w, 3), quality)
            proc.stdout.read()  # (anything beyond the wanted frames is ignored, as before)
        finally:
            proc.stdout.close()
            returncode = proc.wait()
        err.seek(0)
        stderr = err.read()[-4096:].decode(errors="replace").strip()
    if returncode or len(by_index) != len(wanted):
        raise MediaError("undecodable", f"{Path(path).name}: ffmpeg decoded {len(by_index)} of {len(wanted)} frames "
                         f"({stderr[-200:]})")  # fmt: skip
    return [by_index[int(i)] for i in indices]


def decode_frames(path: str | Path, info: VideoInfo, indices: np.ndarray, times: np.ndarray, *, reader=None,
                  short_side: int = 224, quality: int = 90) -> SampledFrames:  # fmt: skip
    """Decode ``indices`` (with ``reader``, decord's, when there is one; else, or if it fails, ffmpeg),
    upright and resized so the display's short side is ``short_side``, as JPEG."""
    size_display = target_size(*info.display_size, short_side)
    decoder, jpegs = "decord", None
    if reader is not None:
        try:
            jpegs = _jpegs_decord(reader, indices, info, size_display, quality)
        except Exception:  # fall back to ffmpeg for anything decord cannot decode
            jpegs = None
    if jpegs is None:
        decoder = "ffmpeg"
        jpegs = _jpegs_ffmpeg(path, indices, size_display, quality)
    return SampledFrames([int(i) for i in indices], [float(times[i]) for i in indices], jpegs, size_display[0],
                         size_display[1], decoder)  # fmt: skip
