"""Red team, resource caps: a tiny video whose frames are huge, and a ``.npy`` whose header lies about its
size, must cost a build no more memory than a normal one — the caps refuse them from the probe and the
header, before any decode or allocation.

Each build runs in a fresh child process that runs ``movid build`` as its own child and reports
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: the peak RSS of the build process or of any process it
started and waited for (ffprobe, ffmpeg), so the figure is that build's alone.

Bound: **1 GiB**. Measured on the development machine (2 cores, local executor, validation on): a normal build
of such a tree (a few clips and their mirrors, 1-2 videos) peaks at ~320 MB, and with the hostile files added at
~320 MB (8K) / ~345 MB (16K: ffprobe itself decodes one frame to probe it). Before the caps, the same builds
peaked at 2.5 GB (a 100 KB file of 8K frames) and 9.8 GB (16K), and the lying header (~1 TB of float32 claimed
by a 40-frame file) aborted the whole build ("Unable to allocate 980. GiB").
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.sample_data import write_sample_videos
from tests.redteam.harness import REPO, Sandbox, quarantine_reasons, secret_env
from tests.redteam.sources import HumanML3DTree, color_video

RSS_BOUND_MB = 1024
_WRAPPER = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(json.dumps({'rc': p.returncode, 'stderr': p.stderr, "
            "'maxrss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")  # fmt: skip


def _peak_rss_build(out, *sources: str) -> dict:
    argv = [sys.executable, "-m", "movid", "build", "--out", str(out), "--executor", "local", "--quiet"]
    for s in sources:
        argv += ["--source", s]
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, env=secret_env(),
                          cwd=REPO, timeout=600, check=True)  # fmt: skip
    return json.loads(proc.stdout)


@pytest.mark.parametrize("size", [pytest.param((7680, 4320), id="8K"),
                                  pytest.param((16384, 8640), id="16K", marks=pytest.mark.slow)])  # fmt: skip
def test_huge_frames_and_a_lying_header_stay_under_the_memory_bound(tmp_path, size):
    tree = HumanML3DTree(tmp_path / "humanml3d", n=2)
    videos = tmp_path / "videos"
    write_sample_videos(videos, tree.root, n_videos=1)
    big = color_video(videos / "big.mp4", *size, fps=2, seconds=2)
    assert big.stat().st_size < 1024**2  # a small file ...
    with open(videos / "metadata.jsonl", "a") as fh:
        fh.write(json.dumps({"path": "big.mp4", "video_id": "big", "split": "train", "captions": ["gray."]}) + "\n")
    tree.add("lie")  # ... and 40 frames whose header claims a billion (~1 TB of float32)
    with open(tree.path("features", "lie"), "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 263)})
        fh.write(tree.features[:40].astype("<f4").tobytes())
    out = tmp_path / "out"
    sandbox = Sandbox(tmp_path, out)
    before = sandbox.snapshot()
    res = _peak_rss_build(out, f"humanml3d={tree.root}", f"video={videos}")
    assert res["rc"] == 0, res["stderr"][-3000:]
    sandbox.check_build(out, before, stderr=res["stderr"])
    reasons = quarantine_reasons(out)
    assert reasons["big"] == "too_many_pixels" and reasons["lie"] == "truncated_file"
    assert res["maxrss_mb"] < RSS_BOUND_MB, f"peak RSS {res['maxrss_mb']:.0f} MB"
