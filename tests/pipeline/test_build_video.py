"""Builds with a video source: the video table, alignment to motions, video conversations, quarantine."""

import io
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from model.shards import load_table
from pipeline.sample_data import write_sample_humanml3d, write_sample_videos
from pipeline.synthetic_body import write_body_model, write_motionx_motion
from pipeline.synthetic_motion import Segment, forward_kinematics
from pipeline.synthetic_video import render_skeleton_frames, write_video
from tests.conftest import local_build


@pytest.fixture(scope="module")
def video_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("vb")
    write_sample_humanml3d(d / "humanml3d", n_motions=8, seed=5)
    write_sample_videos(d / "videos", d / "humanml3d", n_videos=4)
    meta = [json.loads(x) for x in (d / "videos" / "metadata.jsonl").read_text().splitlines()]
    first = meta[0]
    # broken or mismatched entries
    (d / "videos" / "empty.mp4").write_bytes(b"")
    (d / "videos" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 4000)
    shutil.copy(d / "videos" / first["path"], d / "videos" / "copy.mp4")
    long_id = max((m["motion_id"] for m in meta), key=lambda i: np.load(d / "humanml3d/new_joints" / f"{i}.npy").shape[0])
    short_id = min((m["motion_id"] for m in meta), key=lambda i: np.load(d / "humanml3d/new_joints" / f"{i}.npy").shape[0])
    shutil.copy(d / "videos" / f"{short_id}.mp4", d / "videos" / "short_for_long.mp4")
    # a Motion-X-style video with per-frame SMPL-X parameters at its own 30 fps
    write_body_model(d / "models", "smplx", "neutral")
    local, root = write_motionx_motion(d / "videos" / "mx.npy", [Segment("run", 3.0)], np.random.default_rng(2), fps=30)
    # the renderer reads joints as 20-fps frames: frame k of this 30-fps motion is shown at k/30 s
    frame_times_as_20fps = np.arange(len(root)) / 30 * 1.5
    write_video(d / "videos" / "mx.mp4", render_skeleton_frames(forward_kinematics(local, root), frame_times_as_20fps), 30)
    meta += [
        {"path": "empty.mp4", "captions": ["nothing"], "split": "train"},
        {"path": "corrupt.mp4", "captions": ["nothing"], "split": "train"},
        {"path": "copy.mp4", "video_id": "unlinked", "captions": ["a person moves."], "split": "val"},
        {"path": "copy.mp4", "video_id": "segment", "captions": ["part of it."], "split": "train", "start": 1.0, "end": 2.5},
        {"path": "copy.mp4", "video_id": "ghost", "motion_id": "999999", "captions": ["x"]},
        {"path": "short_for_long.mp4", "motion_id": long_id, "captions": ["mismatch"]},
        {"path": "mx.mp4", "smpl": "mx.npy", "captions": ["a person runs forward."], "split": "test"},
    ]
    (d / "videos" / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    out = d / "out"
    m = local_build(None, out, f"smpl.model_dir={d / 'models'}", "frames.short_side=128", "plan.unit_size=3",
                    sources=[f"video={d / 'videos'}", f"humanml3d={d / 'humanml3d'}"])  # fmt: skip
    read = lambda t: [r for f in sorted((out / t).rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]  # noqa: E731
    return d, out, m, {r["video_id"]: r for r in read("video")}, read("motion"), read("instruction"), read("quarantine")


def test_videos_and_their_quarantine(video_build):
    d, out, m, videos, motions, instructions, quarantine = video_build
    assert m["reconciliation"]["ok"]
    assert {r["record_id"]: r["reason"] for r in quarantine if r["table"] == "video"} == {
        "empty": "empty_file", "corrupt": "unreadable_video", "ghost": "unknown_motion", "short_for_long": "length_mismatch"}
    assert len(videos) == 4 + 3 and "unlinked" in videos and videos["unlinked"]["motion_id"] is None
    assert videos["unlinked"]["split"] == "val"
    seg = videos["segment"]
    assert (seg["segment_start"], seg["segment_end"]) == (1.0, 2.5)
    assert 1.0 - 1e-6 <= min(seg["frame_timestamps"]) and max(seg["frame_timestamps"]) < 2.5


def test_frames_decode_at_the_configured_size(video_build):
    for v in video_build[3].values():
        assert len(v["frames"]) == 8 == len(v["frame_timestamps"]) == len(v["frame_indices"])
        for jpeg in v["frames"]:
            img = Image.open(io.BytesIO(jpeg))
            assert img.format == "JPEG" and min(img.size) == 128 and (img.size == (v["width"], v["height"]))
        assert np.all(np.diff(v["frame_timestamps"]) > 0)


def test_sampled_frames_map_to_their_motion_frame_within_half_a_frame(video_build):
    videos = video_build[3]
    aligned = [v for v in videos.values() if v["motion_id"]]
    assert len(aligned) == 5
    for v in aligned:
        t = np.array(v["frame_timestamps"])
        motion_time = t - v["segment_start"] + v["offset_seconds"]
        assert np.all(np.abs(motion_time - np.array(v["motion_frame_indices"]) / 20.0) <= 0.5 / 20 + 1e-4), v["video_id"]
        assert v["overlap_seconds"] > 0 and v["segment_end"] - v["segment_start"] == pytest.approx(v["overlap_seconds"], abs=1e-4)


def test_video_with_smpl_builds_its_motion_and_links_it(video_build):
    _, _, _, videos, motions, _, _ = video_build
    mx = videos["mx"]
    by_id = {r["motion_id"]: r for r in motions}
    assert mx["motion_id"] == "mx" and by_id["mx"]["source"] == "video" and by_id["mx"]["split"] == "test"
    assert by_id["mx"]["texts"][0]["caption"] == "a person runs forward."
    assert max(mx["motion_frame_indices"]) < by_id["mx"]["num_frames"]


def test_video_conversations_for_all_three_modalities(video_build):
    _, _, _, videos, _, instructions, _ = video_build
    modalities = {r["modality"] for r in instructions}
    assert modalities == {"motion", "video", "motion+video"}
    for r in instructions:
        user = r["conversations"][0]["content"]
        if r["modality"] == "video":
            assert r["video_id"] in videos and user.startswith("<video>\n") and r["motion_id"] is None
        if r["modality"] == "motion+video":
            assert videos[r["video_id"]]["motion_id"] == r["motion_id"] and user.startswith("<motion>\n<video>\n")


def test_video_table_loads_with_datasets(video_build, tmp_path):
    out = video_build[1]
    dd = load_table(out, "video", cache_dir=tmp_path)
    assert sum(len(s) for s in dd.values()) == 7


def test_csv_metadata_is_read_like_jsonl(tmp_path):
    from pipeline.config import load_config
    from pipeline.planner import plan_build

    (tmp_path / "metadata.csv").write_text("path,captions,split,start,end\na.mp4,one | two,train,0.5,\nb.mp4,,test,,\n"
                                           "c.mp4,x,train,soon,\nd.mp4,x,train,3,2\n")  # fmt: skip
    plan = plan_build(load_config(None, ["video.metadata=metadata.csv"], [f"video={tmp_path}"]))
    rows = [r for u in plan.units for r in u.rows]
    assert [(r.video_id, r.captions, r.split, r.start, r.end) for r in rows] == [("a", ("one", "two"), "train", 0.5, None),
                                                             ("b", (), "test", None, None)]
    assert {(r.record_id, r.reason) for r in plan.rejects} == {("c", "invalid_metadata"), ("d", "invalid_metadata")}


def test_every_video_gets_a_recaption_and_text_qa_from_it(video_build):
    """The default tasks run both MoVid video passes (offline backend): a re-caption from the frames, then
    QA from that re-caption by a text model; each reconciles per video."""
    _, _, m, videos, _, instructions, _ = video_build
    rec = m["reconciliation"]
    assert rec["annotated_videos"]["in"] == rec["video_text_qa"]["in"] == len(videos)
    assert rec["video_text_qa"]["ok"] and m["annotator"]["videos_qa_annotated"] == len(videos)
    recaption = {r["video_id"]: r["conversations"][1]["content"] for r in instructions
                 if "/video-caption/" in r["sample_id"]}  # fmt: skip
    text_qa = [r for r in instructions if "/video-text-qa/" in r["sample_id"]]
    assert {r["video_id"] for r in text_qa} == set(videos) == set(recaption)
    for r in text_qa:  # the offline text pass answers "what happens" with the video's own re-caption
        if r["conversations"][0]["content"].endswith("What does the person do in the video?"):
            assert r["conversations"][1]["content"] == recaption[r["video_id"]]
