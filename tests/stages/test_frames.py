"""Probing, frame sampling and alignment on real encoded files made here (H.264 mp4, variable frame
rate, rotated, very short, and broken ones)."""

import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from pipeline.synthetic_motion import Segment, synthesize_joints
from pipeline.synthetic_video import render_skeleton_frames, two_rate_times, write_video
from stages.align import common_segment, motion_frames_for
from stages.frames import decode_frames, frame_times, sample_fps_frames, sample_uniform_frames, target_size
from stages.media import MediaError, ffmpeg_exe, ffprobe_exe, probe_video

JOINTS = synthesize_joints([Segment("walk", 2.5, turn="left"), Segment("wave", 2.0, side="left")], np.random.default_rng(0))
SECONDS = len(JOINTS) / 20.0


def _images(sampled):
    return np.stack([np.asarray(Image.open(io.BytesIO(j))).astype(float) for j in sampled.jpegs])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    times = np.arange(int(SECONDS * 30)) / 30
    frames = render_skeleton_frames(JOINTS, times)
    write_video(d / "cfr.mp4", frames, 30)
    write_video(d / "rot90.mp4", frames, 30, rotate=90)
    vfr_times = two_rate_times(len(times), 30, 45, 10)
    vfr_times = vfr_times[vfr_times < SECONDS]
    write_video(d / "vfr.mp4", render_skeleton_frames(JOINTS, vfr_times), 30, vfr=(45, 10))
    write_video(d / "short.mp4", frames[:2], 30)
    (d / "empty.mp4").write_bytes(b"")
    (d / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    data = (d / "cfr.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 3])
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "aac", str(d / "audio.mp4")], check=True)  # fmt: skip
    return d, vfr_times


def test_probe_h264(videos):
    d, _ = videos
    info = probe_video(d / "cfr.mp4")
    assert (info.codec, info.width, info.height, info.rotation, info.fps) == ("h264", 320, 240, 0, 30.0)
    assert not info.variable_frame_rate and not info.has_audio and info.num_frames == int(SECONDS * 30)
    assert probe_video(d / "rot90.mp4").rotation == 90 and probe_video(d / "rot90.mp4").display_size == (240, 320)
    assert probe_video(d / "vfr.mp4").variable_frame_rate


@pytest.mark.parametrize("name,reason", [("empty.mp4", "empty_file"), ("corrupt.mp4", "unreadable_video"),
                                         ("audio.mp4", "no_video_stream"), ("nope.mp4", "missing_file")])  # fmt: skip
def test_broken_files_get_specific_reasons(videos, name, reason):
    d, _ = videos
    with pytest.raises(MediaError) as err:
        probe_video(d / name)
    assert err.value.reason == reason


def test_truncated_file_is_quarantined_as_truncated(videos):
    d, _ = videos
    with pytest.raises(MediaError) as err:
        probe_video(d / "truncated.mp4")
    assert err.value.reason == "truncated" and "frames present" in err.value.detail


def test_uniform_frames_decode_at_the_configured_size(videos):
    d, _ = videos
    info = probe_video(d / "cfr.mp4")
    times, reader = frame_times(d / "cfr.mp4", info)
    idx = sample_uniform_frames(times, 8)
    assert idx[0] == 0 and idx[-1] == len(times) - 1 and np.all(np.diff(idx) > 0)
    sampled = decode_frames(d / "cfr.mp4", info, idx, times, reader=reader, short_side=160)
    assert sampled.decoder == "decord" and (sampled.width, sampled.height) == target_size(320, 240, 160) == (214, 160)
    assert _images(sampled).shape == (8, 160, 214, 3)
    fallback = decode_frames(d / "cfr.mp4", info, idx, times, reader=None, short_side=160)
    assert fallback.decoder == "ffmpeg" and np.abs(_images(fallback) - _images(sampled)).mean() < 3


def test_frames_show_the_motion_at_their_timestamps(videos):
    """On a variable-frame-rate file, each sampled frame looks like the skeleton at its reported time."""
    d, vfr_times = videos
    info = probe_video(d / "vfr.mp4")
    times, reader = frame_times(d / "vfr.mp4", info)
    pts = subprocess.run([ffprobe_exe(), "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
                          "-of", "csv=p=0", str(d / "vfr.mp4")], capture_output=True, text=True).stdout.split()  # fmt: skip
    np.testing.assert_allclose(times, sorted(map(float, pts)), atol=1e-3)  # the file's own timestamps…
    np.testing.assert_allclose(times, vfr_times, atol=1 / 30 + 1e-3)  # …which the encoder rounded to its time base
    sampled = decode_frames(d / "vfr.mp4", info, sample_uniform_frames(times, 8), times, reader=reader, short_side=240)
    got = _images(sampled)
    for k, t in enumerate(sampled.timestamps):
        others = [c for c in (t - 0.3, t + 0.3) if 0 <= c < SECONDS]
        ref = render_skeleton_frames(JOINTS, np.array([t, *others])).astype(float)
        errors = np.abs(ref - got[k][None]).mean(axis=(1, 2, 3))
        assert errors[0] < errors[1:].min(), (k, t, errors)


def test_rotated_file_comes_out_upright(videos):
    d, _ = videos
    plain, rot = (probe_video(d / n) for n in ("cfr.mp4", "rot90.mp4"))
    tp, rp = frame_times(d / "cfr.mp4", plain)
    tr, rr = frame_times(d / "rot90.mp4", rot)
    a = _images(decode_frames(d / "cfr.mp4", plain, sample_uniform_frames(tp, 4), tp, reader=rp))
    b = _images(decode_frames(d / "rot90.mp4", rot, sample_uniform_frames(tr, 4), tr, reader=rr))
    assert b.shape == (4, 298, 224, 3)  # portrait: the display, not the stored 320×240
    assert np.abs(np.rot90(a, k=-1, axes=(1, 2)) - b).mean() < 3  # turned clockwise, as players show it


def test_very_short_file_repeats_frames(videos):
    d, _ = videos
    info = probe_video(d / "short.mp4")
    times, reader = frame_times(d / "short.mp4", info)
    idx = sample_uniform_frames(times, 8)
    assert len(idx) == 8 and set(idx) == {0, 1}
    assert len(decode_frames(d / "short.mp4", info, idx, times, reader=reader).jpegs) == 8


def test_fps_mode():
    times = np.arange(300) / 30
    idx = sample_fps_frames(times, 2.0, start=1.0, end=5.0)
    np.testing.assert_allclose(times[idx], np.arange(1.0, 5.0, 0.5), atol=1e-9)


@pytest.mark.parametrize("fps", [30.0, 24.0, 25.0])
def test_each_sampled_frame_is_within_half_a_motion_frame(fps):
    times = np.arange(int(SECONDS * fps)) / fps
    al = common_segment(0.0, times[-1] + 1 / fps, SECONDS)
    idx = sample_uniform_frames(times, 8, al.video_start, al.video_end)
    motion = motion_frames_for(times[idx], al, len(JOINTS))
    assert np.all(np.abs(times[idx] - al.video_start + al.offset - motion / 20.0) <= 0.5 / 20 + 1e-9)


def test_alignment_crops_to_the_common_segment_and_refuses_mismatches():
    al = common_segment(2.0, 7.0, 4.6, offset=0.5)
    assert (al.video_start, round(al.video_end, 6), al.offset, round(al.overlap, 6)) == (2.0, 6.1, 0.5, 4.1)
    al = common_segment(0.0, 5.0, 5.2, offset=-0.4)  # the video starts 0.4 s before the motion
    assert (al.video_start, al.offset, round(al.overlap, 6)) == (0.4, 0.0, 4.6)
    with pytest.raises(MediaError, match="length_mismatch"):
        common_segment(0.0, 9.0, 4.0, tolerance=0.5)
