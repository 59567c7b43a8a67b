"""Frame sampling speed: 8 uniform frames per clip, movid against the ffmpeg CLI, measured side by side.

    .venv/bin/python bench/frames.py [--clips 3] [--gops 160,30] [--rounds 3] [--segment] [--workdir bench_out]
    .venv/bin/python bench/frames.py --quick     # small clips, a few seconds; exit 1 when the goal is missed

Each clip is H.264 with a keyframe exactly every GOP frames (one set of clips per GOP). Compared in one run,
on the same files, in interleaved rounds (the order of the methods rotates each round), each method doing all
the clips of a set once per round:
  movid        probe + decord index + seek-decode of the 8 frames + resize + JPEG (stages.frames), clip after
               clip as ingest runs them (a clip's reader lives until the next clip's is made)
  ffmpeg -ss   ffprobe for the frame count, then per sampled frame one `ffmpeg -ss T -i file -frames:v 1`
               scaling to the same size and writing one JPEG: the plain way to grab frames with the CLI
  ffmpeg select  ffprobe, then one ffmpeg run with select='eq(n,i1)+…' and scale, MJPEG to a pipe
  decord raw   decord's VideoReader + get_batch of the same indices, nothing else (no probe, no JPEG)
  decode all   decoding every frame of the clip once (ffmpeg -threads 1 -f null; full run only)
The 8 frames span the whole clip, or with --segment its middle half (an aligned segment: the file goes on
after the last frame wanted). Printed per method: wall seconds and CPU seconds (this process and its
children) per round, median and range over the rounds. The goal is movid ≥ 1.5× ffmpeg -ss in wall time,
judged on the median of the per-round ratios of every GOP set; the range of the ratios is printed next to it.

Both sides decode the same frames: from the keyframe before each sample up to it (decord reuses a GOP it is
already in, ffmpeg -ss never does), so on the full run's clips, one sample per GOP, the ratio is ffmpeg's cost
per process and per seek against decord's. --quick's 320×240 clips decode four times cheaper, which makes
ffmpeg's fixed costs weigh more and its ratio higher: it catches a regression that decodes more than the
samples need (the whole file, a process per frame), not one of a few per cent.
"""

from __future__ import annotations

import argparse
import resource
import statistics
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

K, FPS, SHORT_SIDE, GOAL = 8, 30.0, 224, 1.5
FULL = {"clips": 3, "seconds": 60.0, "size": (640, 480), "gops": "160,30", "rounds": 3}
QUICK = {"clips": 2, "seconds": 16.0, "size": (320, 240), "gops": "160", "rounds": 3}


def make_clip(path: Path, seed: int, seconds: float, size: tuple[int, int], gop: int) -> None:
    """A skeleton over a moving, noisy background, so the encoder has real residuals to code."""
    w, h = size
    rng = np.random.default_rng(seed)
    joints = synthesize_joints([Segment("walk", seconds, turn="left")], rng)
    times = np.arange(int(seconds * FPS)) / FPS
    frames = render_skeleton_frames(joints, times, w, h).astype(np.int16)
    texture = rng.integers(0, 60, (h, w * 2, 3), dtype=np.int16)
    for i in range(len(frames)):
        shift = (i * 4) % w
        frames[i] = np.clip(frames[i] - texture[:, shift : shift + w], 0, 255)
    write_video(path, frames.astype(np.uint8), FPS, crf=28, gop=gop)


SEGMENT = None  # the part of each clip sampled, as fractions of its duration (--segment: the middle half)


def _span(duration: float) -> tuple[float, float | None]:
    return (0.0, None) if SEGMENT is None else (SEGMENT[0] * duration, SEGMENT[1] * duration)


class Movid:
    """stages.frames as ingest_video calls it: the reader made for one clip is kept until the next one's."""

    def __init__(self):
        self.reader = None

    def __call__(self, path: Path) -> list[bytes]:
        info = probe_video(path)
        times, reader = frame_times(path, info)
        self.reader = reader
        idx = sample_uniform_frames(times, K, *_span(info.duration))
        return decode_frames(path, info, idx, times, reader=reader, short_side=SHORT_SIDE).jpegs

    def close(self) -> None:
        """End of a round: the last reader goes, as ingest's does when its unit ends."""
        self.reader = None


def _probe_frames(path: Path) -> tuple[int, float, int, int]:
    out = subprocess.run([ffprobe_exe(), "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_frames,avg_frame_rate,width,height", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout.strip().split(",")  # fmt: skip
    width, height, rate, n = out
    num, den = rate.split("/")
    return int(n), int(num) / int(den), int(width), int(height)


def _picks(n: int, fps: float) -> np.ndarray:
    """The frames movid picks, from the frame count and rate alone (the clips here have a constant rate)."""
    return sample_uniform_frames(np.arange(n) / fps, K, *_span(n / fps))


def ffmpeg_ss(path: Path) -> list[bytes]:
    """Half a frame before each wanted frame's time, so the accurate seek lands on it and no neighbour."""
    n, fps, width, height = _probe_frames(path)
    w, h = target_size(width, height, SHORT_SIDE)
    jpegs = []
    for i in _picks(n, fps):
        out = subprocess.run([ffmpeg_exe(), "-v", "error", "-ss", f"{max(0.0, (i - 0.5) / fps):.6f}", "-i", str(path),
                              "-frames:v", "1", "-vf", f"scale={w}:{h}", "-f", "image2pipe", "-c:v", "mjpeg",
                              "-q:v", "3", "-"], capture_output=True, check=True)  # fmt: skip
        jpegs.append(out.stdout)
    return jpegs


def ffmpeg_select(path: Path) -> list[bytes]:
    n, fps, width, height = _probe_frames(path)
    w, h = target_size(width, height, SHORT_SIDE)
    select = "+".join(f"eq(n\\,{i})" for i in _picks(n, fps))
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-vf", f"select={select},scale={w}:{h}",
                          "-fps_mode", "passthrough", "-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "3", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return [part + b"\xff\xd9" for part in out.split(b"\xff\xd9")[:-1]]  # JPEG end markers


def decord_raw(path: Path) -> list[np.ndarray]:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    return list(reader.get_batch(list(map(int, _picks(len(reader), reader.get_avg_fps())))).asnumpy())


def decode_all(path: Path) -> list[None]:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)
    return [None] * K


def check_same_frames(path: Path) -> None:
    """The baselines must grab the frames movid grabs: each of ffmpeg -ss's JPEGs is nearer to movid's frame
    than to that frame's neighbours (so a wrong seek shows here, not as a flattering time)."""
    import io

    from PIL import Image

    def pixels(jpegs):
        return np.stack([np.asarray(Image.open(io.BytesIO(j))).astype(np.float32) for j in jpegs])

    ours, theirs = pixels(Movid()(path)), pixels(ffmpeg_ss(path))
    err = np.abs(ours[:, None] - theirs[None]).mean(axis=(2, 3, 4))  # err[i, j]: our frame i vs their frame j
    if not np.array_equal(err.argmin(axis=0), np.arange(K)):
        raise SystemExit(f"ffmpeg -ss picked other frames than movid in {path.name}: {err.round(1)}")


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_rounds(methods: dict, clips: list[Path], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) seconds per round for each method over all the clips; the order rotates every round."""
    for fn in methods.values():
        fn(clips[0])  # warm the page cache and the libraries
    names, out = list(methods), {name: [] for name in methods}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0, c0 = time.perf_counter(), _cpu()
            got = sum(len(methods[name](p)) for p in clips)
            getattr(methods[name], "close", lambda: None)()
            out[name].append((time.perf_counter() - t0, _cpu() - c0))
            if got != K * len(clips):
                raise SystemExit(f"{name} gave {got} frames for {len(clips)} clips, not {K} each")
    return out


def _spread(values: list[float], fmt: str = ".3f") -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}–{max(values):{fmt}}]"


def report(gop: int, clips: list[Path], results: dict) -> float:
    """Print one GOP set's table and ratios; return the median wall ratio of ffmpeg -ss to movid."""
    print(f"\nkeyframe every {gop} frames: {len(clips)} clips, {K} frames each; median [range] of "
          f"{len(results['movid'])} rounds")  # fmt: skip
    print(f"{'':<16}{'wall s':>24}{'CPU s':>24}")
    for name, runs in results.items():
        print(f"{name:<16}{_spread([w for w, _ in runs]):>24}{_spread([c for _, c in runs]):>24}")
    base = results["movid"]
    for name in [n for n in results if n != "movid"]:
        wall = [w / mw for (w, _), (mw, _) in zip(results[name], base, strict=True)]
        cpu = [c / mc for (_, c), (_, mc) in zip(results[name], base, strict=True)]
        print(f"  movid vs {name:<14} wall {_spread(wall, '.2f')}×   CPU {_spread(cpu, '.2f')}×")
    return statistics.median(w / mw for (w, _), (mw, _) in zip(results["ffmpeg -ss"], base, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small clips, a few seconds (make bench-check)")
    ap.add_argument("--clips", type=int)
    ap.add_argument("--gops", help="keyframe intervals, comma separated: one set of clips each")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--segment", action="store_true", help="sample the middle half of each clip, not all of it")
    ap.add_argument("--workdir", default="bench_out")
    args = ap.parse_args()
    preset = QUICK if args.quick else FULL
    clips_n, rounds = args.clips or preset["clips"], args.rounds or preset["rounds"]
    seconds, (w, h) = preset["seconds"], preset["size"]
    global SEGMENT
    SEGMENT = (0.25, 0.75) if args.segment else None
    methods = {"movid": Movid(), "ffmpeg -ss": ffmpeg_ss, "decord raw": decord_raw}
    if not args.quick:
        methods |= {"ffmpeg select": ffmpeg_select, "decode all": decode_all}
    ratios = {}
    for gop in map(int, (args.gops or preset["gops"]).split(",")):
        folder = Path(args.workdir) / "frames" / f"{w}x{h}_{seconds:g}s_gop{gop}"
        clips = [folder / f"clip{i}.mp4" for i in range(clips_n)]
        for i, p in enumerate(clips):
            if not p.is_file():
                print(f"encoding {p} ({seconds:g} s, {w}×{h}, {FPS:g} fps, keyframe every {gop}) …", flush=True)
                make_clip(p, i, seconds, (w, h), gop)
        check_same_frames(clips[0])
        ratios[gop] = report(gop, clips, run_rounds(methods, clips, rounds))
    missed = {g: r for g, r in ratios.items() if r < GOAL}
    summary = ", ".join(f"GOP {g}: {r:.2f}×" for g, r in ratios.items())
    print(f"\nmovid vs ffmpeg -ss (median wall ratio) {summary}; goal ≥ {GOAL}× — {'MISSED' if missed else 'met'}")
    print(f"reproduce: .venv/bin/python bench/frames.py {' '.join(sys.argv[1:])}".rstrip())
    if missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
