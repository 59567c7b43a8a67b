"""Red team, video files and metadata: a ``path`` of ``../x.mp4``, an absolute path or a symlink out of the
source, metadata lines that are not JSON, not objects, or hold ``captions`` of the wrong type, NUL in a
caption, a tiny file of 8K frames, too many frames, too long — each one record quarantined with its reason
(a broken line is its own row, ``metadata.jsonl:LINE``), the other rows still built, and normalised captions
accepted.

One build (validation on); the video caps are lowered (``frames.max_video_frames=1000``,
``frames.max_video_seconds=300``) so that the files over them stay small and quick to make.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.sample_data import write_sample_videos
from pipeline.synthetic_body import write_body_model
from tests.redteam.harness import Sandbox
from tests.redteam.sources import HumanML3DTree, build, color_video


def _rows(d, outside, real: str) -> tuple[list[bytes], dict[str, str], dict[str, list[str]]]:
    """Metadata lines (bytes, as written) → expected reasons by record id, and captions accepted by id."""
    lines, expected, accepted = [], {}, {}

    def row(vid, reason, **fields):
        lines.append(json.dumps({"video_id": vid, "split": "train"} | fields).encode())
        if reason == "accepted":
            accepted[vid] = fields.get("captions", [])
        else:
            expected[vid] = reason

    def raw(data: bytes, reason):
        lines.append(data)
        expected[f"metadata.jsonl:{len(lines) + 1}"] = reason  # (+1: the sample's own first line)

    row("rt_up", "path_outside_root", path="../outside/v.mp4")
    row("rt_abs", "path_outside_root", path=str(outside / "v.mp4"))
    (d / "videos" / "link.mp4").symlink_to(outside / "v.mp4")
    row("rt_link_out", "path_outside_root", path="link.mp4")
    (d / "videos" / "inlink.mp4").symlink_to(real)
    row("rt_link_in", "accepted", path="inlink.mp4", captions=["a person moves."])
    row("rt_smpl_up", "path_outside_root", path=real, smpl="../outside/mx.npy")
    raw(b"[1, 2, 3]", "invalid_metadata")
    raw(b'"just a string"', "invalid_metadata")
    raw(b"{not json at all", "invalid_json")
    raw(b'{"path": "\xff\xfe.mp4"}', "invalid_json")
    raw(b"[" * 100_000 + b"]" * 100_000, "invalid_json")  # deeper than Python's recursion
    row("rt_caps_str", "invalid_captions", path=real, captions="a person walks")  # not one caption per character
    row("rt_caps_mixed", "invalid_captions", path=real, captions=["a person walks.", 3, None])
    row("rt_caps_dict", "invalid_captions", path=real, captions={"a": 1})
    row("rt_caps_nul", "control_characters", path=real, captions=["a per\u0000son walks."])
    row("rt_caps_escape", "control_characters", path=real, captions=["\u001b]0;pwned\u0007a person"])
    row("rt_caps_many", "too_many_captions", path=real, captions=["a person walks."] * 65)
    row("rt_caps_long", "caption_too_long", path=real, captions=["a" * 1001])
    row("rt_caps_messy", "accepted", path=real, captions=["a person\r\nwalks.", "\ufeffa person\twaves."])
    row("rt_path_number", "invalid_metadata", path=42)
    row("rt_path_nul", "invalid_metadata", path="a\u0000.mp4")
    row("rt_split_list", "invalid_metadata", path=real, split=["train"])
    row("rt_motion_number", "invalid_metadata", path=real, motion_id=5)
    row("../rt_vid_up", "invalid_id", path=real)
    row("rt_start_neg", "invalid_metadata", path=real, start=-1.0)
    lines.append(b'{"video_id": "rt_start_nan", "path": "%s", "split": "train", "start": NaN}' % real.encode())
    expected["rt_start_nan"] = "invalid_metadata"  # (Python's json reads NaN and Infinity)
    lines.append(b'{"video_id": "rt_end_inf", "path": "%s", "split": "train", "end": Infinity}' % real.encode())
    expected["rt_end_inf"] = "invalid_metadata"
    color_video(d / "videos" / "8k.mp4", 7680, 4320, 2, 1)
    row("rt_8k", "too_many_pixels", path="8k.mp4")
    color_video(d / "videos" / "many.mp4", 64, 64, 120, 10)  # 1,200 frames
    row("rt_many_frames", "too_many_video_frames", path="many.mp4")
    color_video(d / "videos" / "long.mp4", 64, 64, 1, 400)  # 400 s
    row("rt_long", "video_too_long", path="long.mp4")
    (d / "videos" / "adir.mp4").mkdir()
    row("rt_dir", "missing_file", path="adir.mp4")
    os.mkfifo(d / "videos" / "fifo.mp4")
    row("rt_fifo", "missing_file", path="fifo.mp4")
    return lines, expected, accepted


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt_videos")
    tree = HumanML3DTree(d / "humanml3d", n=3)
    write_sample_videos(d / "videos", tree.root, n_videos=2)
    outside = d / "outside"
    outside.mkdir()
    sample = [json.loads(x) for x in (d / "videos" / "metadata.jsonl").read_text().splitlines()]
    real = sample[0]["path"]
    shutil.copy(d / "videos" / real, outside / "v.mp4")
    np.save(outside / "mx.npy", np.zeros((60, 322), np.float32))
    write_body_model(d / "models", "smplx", "neutral")
    lines, expected, accepted = _rows(d, outside, real)
    first, *rest = [json.dumps(m).encode() for m in sample]
    # a BOM before the first line and CRLF endings, as an editor on another system may leave them
    data = b"\xef\xbb\xbf" + first + b"\r\n" + b"".join(x + b"\r\n" for x in lines) + b"".join(x + b"\n" for x in rest)
    (d / "videos" / "metadata.jsonl").write_bytes(data)
    out = d / "out"
    b = build(Sandbox(d, out), out, [f"humanml3d={tree.root}", f"video={d / 'videos'}"],
              f"smpl.model_dir={d / 'models'}", "frames.max_video_frames=1000", "frames.max_video_seconds=300")  # fmt: skip
    videos = {r["video_id"]: r for f in sorted((out / "video").rglob("*.parquet"))
              for r in pq.read_table(f, columns=["video_id", "captions"]).to_pylist()}  # fmt: skip
    return b, videos, expected, accepted, [m.get("video_id") or m["path"][:-4] for m in sample]


EXPECTED_IDS = ["rt_up", "rt_abs", "rt_link_out", "rt_smpl_up", "metadata.jsonl:7", "metadata.jsonl:8",
                "metadata.jsonl:9", "metadata.jsonl:10", "metadata.jsonl:11", "rt_caps_str", "rt_caps_mixed",
                "rt_caps_dict", "rt_caps_nul", "rt_caps_escape", "rt_caps_many", "rt_caps_long", "rt_path_number",
                "rt_path_nul", "rt_split_list", "rt_motion_number", "../rt_vid_up", "rt_start_neg", "rt_start_nan",
                "rt_end_inf", "rt_8k", "rt_many_frames", "rt_long", "rt_dir", "rt_fifo"]  # fmt: skip


@pytest.mark.parametrize("rid", EXPECTED_IDS)
def test_hostile_video_record(built, rid):
    b, videos, expected, _, _ = built
    assert b.reasons.get(rid) == expected[rid], (rid, b.reasons.get(rid))
    assert rid not in videos


def test_every_case_is_listed(built):
    assert set(EXPECTED_IDS) == set(built[2])


@pytest.mark.parametrize("vid", ["rt_link_in", "rt_caps_messy"])
def test_accepted_with_normalised_captions(built, vid):
    b, videos, _, _, _ = built
    assert vid in videos and vid not in b.reasons
    if vid == "rt_caps_messy":
        assert videos[vid]["captions"] == ["a person walks.", "a person waves."]


def test_the_bom_and_crlf_lines_of_the_sample_still_build(built):
    b, videos, _, _, sample_ids = built
    assert set(sample_ids) <= set(videos), (sample_ids, sorted(videos))
