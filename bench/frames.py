"""Frame sampling speed: 8 uniform frames from 60 s 640×480 H.264 clips.

    .venv/bin/python bench/frames.py [--clips 3] [--workdir bench_out]

Compared in one run, on the same files, each producing 8 JPEGs (short side 224) per clip:
  movid     probe + decord index + seek-decode of the 8 frames + resize + JPEG (stages.frames)
  ffmpeg    the ffmpeg CLI doing the same selection: ffprobe, then one ffmpeg run with
            select='eq(n,i1)+…' and scale, writing MJPEG to a pipe
  floor     decoding every frame of the clip once (ffmpeg -f null): what any decode-all approach pays
Goal: movid ≥ 1.5× the ffmpeg-CLI approach.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synthetic_motion import Segment, synthesize_joints  # noqa: E402
from pipeline.synthetic_video import render_skeleton_frames, write_video  # noqa: E402
from stages.frames import decode_frames, frame_times, sample_uniform_frames, target_size  # noqa: E402
from stages.media import ffmpeg_exe, ffprobe_exe, probe_video  # noqa: E402

K, SECONDS, FPS, W, H = 8, 60.0, 30.0, 640, 480


def make_clip(path: Path, seed: int) -> None:
    """A skeleton over a moving, noisy background, so the encoder has real residuals to code."""
    rng = np.random.default_rng(seed)
    joints = synthesize_joints([Segment("walk", SECONDS, turn="left")], rng)
    times = np.arange(int(SECONDS * FPS)) / FPS
    frames = render_skeleton_frames(joints, times, W, H).astype(np.int16)
    texture = rng.integers(0, 60, (H, W * 2, 3), dtype=np.int16)
    for i in range(len(frames)):
        shift = (i * 4) % W
        frames[i] = np.clip(frames[i] - texture[:, shift : shift + W], 0, 255)
    write_video(path, frames.astype(np.uint8), FPS, crf=28)


def movid(path: Path) -> int:
    info = probe_video(path)
    times, reader = frame_times(path, info)
    return len(decode_frames(path, info, sample_uniform_frames(times, K), times, reader=reader).jpegs)


def ffmpeg_cli(path: Path) -> int:
    probe = subprocess.run([ffprobe_exe(), "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=nb_frames",
                            "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)  # fmt: skip
    n = int(probe.stdout.strip())
    picks = np.rint(np.linspace(0, n - 1, K)).astype(int)
    w, h = target_size(W, H, 224)
    select = "+".join(f"eq(n\\,{i})" for i in picks)
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select={select},scale={w}:{h}",
                          "-fps_mode", "passthrough", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "3", "-"],
                         capture_output=True, check=True)  # fmt: skip
    return out.stdout.count(b"\xff\xd9")  # JPEG end markers


def full_decode(path: Path) -> int:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)
    return K


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--workdir", default="bench_out")
    args = ap.parse_args()
    folder = Path(args.workdir) / "frames"
    clips = [folder / f"clip{i}.mp4" for i in range(args.clips)]
    for i, p in enumerate(clips):
        if not p.is_file():
            print(f"encoding {p} ({SECONDS:.0f} s, {W}×{H}, {FPS:.0f} fps) …", flush=True)
            make_clip(p, i)
    results = {}
    for name, fn in (("movid (decord)", movid), ("ffmpeg CLI, same selection", ffmpeg_cli),
                     ("floor: decode every frame", full_decode)):  # fmt: skip
        fn(clips[0])  # warm caches
        t0 = time.perf_counter()
        got = sum(fn(p) for p in clips)
        results[name] = time.perf_counter() - t0
        assert got == K * len(clips), (name, got)
    print(f"\n{len(clips)} clips of {SECONDS:.0f} s {W}×{H} H.264, {K} frames each")
    print(f"{'':<30}{'seconds':>9}{'clips/s':>9}{'frames/s':>10}")
    for name, t in results.items():
        print(f"{name:<30}{t:>9.2f}{len(clips) / t:>9.2f}{K * len(clips) / t:>10.1f}")
    ratio = results["ffmpeg CLI, same selection"] / results["movid (decord)"]
    print(f"movid vs ffmpeg CLI: {ratio:.1f}× (goal ≥ 1.5×); vs the full-decode floor: "
          f"{results['floor: decode every frame'] / results['movid (decord)']:.1f}×")
    print(f"reproduce: .venv/bin/python bench/frames.py --clips {args.clips}")


if __name__ == "__main__":
    main()
