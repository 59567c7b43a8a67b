"""Sampled frames are exactly the frames of a straightforward decode: every frame decoded in order, no
seeking, then resized and JPEG-encoded as movid does. On generated H.264 files with several keyframe
intervals (every frame, 7, 30, the encoder's own), an odd length, a variable frame rate and a rotation; index
sets with the first and last frames, keyframes and their neighbours, repeats, several decode chunks, and an
unordered one. One reader serves every index set in turn (ingest uses each reader once), so a call that left
the reader in a bad state shows in the next."""

import io
import resource
import time

import numpy as np
import pytest
from PIL import Image

from pipeline.synthetic_motion import Segment, synthesize_joints
from pipeline.synthetic_video import render_skeleton_frames, two_rate_times, write_video
from stages.frames import (
    DECODE_CHUNK,
    decode_frames,
    frame_times,
    sample_fps_frames,
    sample_uniform_frames,
    target_size,
)
from stages.media import probe_video

N = 151  # 5 GOPs of 30 and one frame: the last frame is a keyframe there, mid-GOP for the others
SHORT_SIDE, QUALITY = 112, 85


@pytest.fixture(scope="module")
def joints():
    segments = [Segment("walk", 3.0, turn="right"), Segment("jump", 2.0), Segment("walk", 3.0, turn="left")]
    return synthesize_joints(segments, np.random.default_rng(3))  # 8 s: every frame below shows a new pose


@pytest.fixture(scope="module")
def videos(tmp_path_factory, joints):
    d = tmp_path_factory.mktemp("exact")
    frames = render_skeleton_frames(joints, np.arange(N) / 30)
    made = {f"gop{g}": write_video(d / f"gop{g}.mp4", frames, 30, gop=g) for g in (1, 7, 30)}
    made["gop_default"] = write_video(d / "gop_default.mp4", frames, 30)
    made["rot90_gop7"] = write_video(d / "rot90.mp4", frames, 30, rotate=90, gop=7)
    vfr_times = two_rate_times(N, 30, 45, 20)  # 30 fps, then 20: 6.8 s
    made["vfr_gop30"] = write_video(d / "vfr.mp4", render_skeleton_frames(joints, vfr_times), 30, vfr=(45, 20), gop=30)
    return made


def _straight_jpegs(path, indices, size):
    """Every frame decoded once, in order (decord's next(): no seek at all), then picked."""
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    frames = [reader.next().asnumpy() for _ in range(len(reader))]
    out = []
    for i in indices:
        buf = io.BytesIO()
        Image.fromarray(frames[i]).resize(size, Image.BILINEAR).save(buf, format="JPEG", quality=QUALITY)
        out.append(buf.getvalue())
    return out


def _index_sets(times, keys):
    n = len(times)
    around_keys = sorted({j for k in keys for j in (k - 1, k, k + 1) if 0 <= j < n} | {0, n - 1})
    return {
        "uniform 8": sample_uniform_frames(times, 8),
        "uniform 13 in a segment": sample_uniform_frames(times, 13, 0.7, 3.9),
        "every frame": sample_fps_frames(times, 1000.0),
        "keyframes and neighbours": np.array(around_keys),
        "unordered with repeats": np.array([n - 1, 0, n // 2, n // 2, 3, n - 2, 1, 0, keys[-1], n // 3]),
    }


@pytest.mark.parametrize("name", ["gop1", "gop7", "gop30", "gop_default", "rot90_gop7", "vfr_gop30"])
def test_sampled_frames_equal_a_straight_decode(videos, name):
    import decord

    path = videos[name]
    info = probe_video(path)
    times, reader = frame_times(path, info)
    assert reader is not None and len(times) == N
    keys = decord.VideoReader(str(path), num_threads=1).get_key_indices()
    size = target_size(*info.display_size, SHORT_SIDE)
    for label, idx in _index_sets(times, keys).items():  # one reader for all: each call must leave it usable
        sampled = decode_frames(path, info, idx, times, reader=reader, short_side=SHORT_SIDE, quality=QUALITY)
        assert sampled.decoder == "decord", label
        assert sampled.indices == [int(i) for i in idx] and sampled.timestamps == [float(times[i]) for i in idx]
        expected = _straight_jpegs(path, idx, size)
        wrong = [int(i) for i, a, b in zip(idx, sampled.jpegs, expected, strict=True) if a != b]
        assert not wrong, f"{name}, {label}: frames {wrong} differ from the straight decode"


def test_index_sets_cover_what_they_claim(videos):
    """Guards the test above: the sets do reach keyframes, both ends, and more than one decode chunk."""
    import decord

    path = videos["gop7"]
    times, _ = frame_times(path, probe_video(path))
    keys = decord.VideoReader(str(path), num_threads=1).get_key_indices()
    sets = _index_sets(times, keys)
    assert keys[:3] == [0, 7, 14] and set(keys) <= set(sets["keyframes and neighbours"])
    assert {0, N - 1} <= set(sets["uniform 8"]) and len(sets["every frame"]) == N > DECODE_CHUNK
    assert len(sets["uniform 13 in a segment"]) > DECODE_CHUNK
    assert probe_video(videos["vfr_gop30"]).variable_frame_rate and probe_video(videos["rot90_gop7"]).rotation == 90


def test_reader_stops_decoding_once_the_frames_are_out(tmp_path, joints):
    """decord's reader decodes ahead of what it was asked; after decode_frames it must sit idle (parked),
    not go on decoding the rest of the file in its thread while ingest keeps it."""
    loop = (np.arange(5 * N) / 30) % 5.0  # 25 s: the motion five times over
    path = write_video(tmp_path / "long.mp4", render_skeleton_frames(joints, loop), 30, gop=250)
    info = probe_video(path)
    times, reader = frame_times(path, info)
    idx = sample_uniform_frames(times, 8, 0.0, 2.0)
    sampled = decode_frames(path, info, idx, times, reader=reader, short_side=SHORT_SIDE, quality=QUALITY)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(0.4)
    after = resource.getrusage(resource.RUSAGE_SELF)
    busy = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    assert busy < 0.05, f"{busy:.2f} s of CPU spent while idle: the reader is still decoding"
    assert sampled.jpegs == _straight_jpegs(path, idx, target_size(320, 240, SHORT_SIDE))
    idx = np.array([len(times) - 1, 5])  # the parked reader still gives the right frames
    again = decode_frames(path, info, idx, times, reader=reader, short_side=SHORT_SIDE, quality=QUALITY)
    assert again.jpegs == _straight_jpegs(path, idx, target_size(320, 240, SHORT_SIDE))
