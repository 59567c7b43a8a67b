"""Speed of HumanML3D featurization: movid's ``joints_to_features`` against HumanML3D's own ``process_file``,
side by side on the same clips.

    .venv/bin/python bench/kinematics.py [--clips 400] [--rounds 3] [--reference DIR] [--quick]

``--reference DIR`` runs the reference's ``process_file`` from a local checkout of its repository
(``git clone https://github.com/EricGuo5513/HumanML3D``; never part of movid; loaded by
``bench/humanml3d_reference.py``), torch on one thread, clip by clip as its notebook does. Each round
runs every way once, in a rotating order, on the same clips, and the ratios of frames/s are printed
as medians with their ranges over rounds. Goals against the reference: movid batched on one thread
≥ 20×, batched on two workers ≥ 35×, clip by clip ≥ 15×. Without ``--reference`` no reference is run
and no ratio is printed; the goal is then ≥ 120,000 frames/s batched on one thread (HumanML3D's
~4.1 M frames, mirrors included, in under 35 s). The exit status is 1 when a goal is missed.

``--quick`` (120 clips, no SMPL+H section) is what ``make bench-check`` runs. Clips are synthetic
motions on random body sizes, headings, positions and speeds, 40–196 frames.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synthetic_body import write_amass_motion, write_body_model  # noqa: E402
from pipeline.synthetic_motion import ACTIONS, Segment, synthesize_joints  # noqa: E402
from stages.kinematics import joints_to_features, joints_to_features_batch  # noqa: E402
from stages.smpl import BodyModels, amass_joints, read_amass_npz  # noqa: E402

HUMANML3D_FRAMES = 4.1e6
GOAL_FPS = 120_000  # batched, one thread, when no reference is run
GOALS = {"batched, 1 thread": 20.0, "batched, 2 workers": 35.0, "clip by clip": 15.0}  # × the reference


def make_clips(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        frames = int(rng.integers(40, 197))
        seg = Segment(str(rng.choice(ACTIONS)), frames / 20.0, turn=str(rng.choice(["none", "left", "right"])))
        j = synthesize_joints([seg], rng)[:frames]
        j = j * rng.uniform(0.8, 1.2)  # another body size
        yaw = rng.uniform(-np.pi, np.pi)
        c, s = np.cos(yaw), np.sin(yaw)
        j = j @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]) + rng.normal(0, 2, 3) * np.array([1, 0, 1])
        clips.append(j.astype(np.float32))
    return clips


def ways(clips: list[np.ndarray], reference) -> dict[str, Callable[[], object]]:
    out = {
        "batched, 1 thread": lambda: joints_to_features_batch(clips, workers=1),
        "batched, 2 workers": lambda: joints_to_features_batch(clips, workers=2),
        "clip by clip": lambda: [joints_to_features(c) for c in clips],
    }
    if reference is not None:
        out["reference process_file"] = lambda: [reference.features(c) for c in clips]
    return out


def measure(clips: list[np.ndarray], reference, rounds: int) -> dict[str, list[float]]:
    """frames/s of each way in each round; the order of the ways rotates from round to round."""
    frames = sum(len(c) for c in clips)
    todo = ways(clips, reference)
    joints_to_features_batch(clips[:8], workers=2)  # warm-up: imports, first allocations
    if reference is not None:
        reference.features(clips[0])
    fps: dict[str, list[float]] = {name: [] for name in todo}
    names = list(todo)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            todo[name]()
            fps[name].append(frames / (time.perf_counter() - t0))
    return fps


def _range(values: list[float], fmt: str) -> str:
    return f"{np.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def report(fps: dict[str, list[float]], with_reference: bool) -> list[str]:
    """Print the figures; return the goals missed."""
    missed = []
    print("frames/s, median (range) over rounds:")
    for name, values in fps.items():
        print(f"  {name:<24} {_range(values, ',.0f')}  HumanML3D in {HUMANML3D_FRAMES / np.median(values):7.1f} s")
    two = [b / a for a, b in zip(fps["batched, 1 thread"], fps["batched, 2 workers"], strict=True)]
    print(f"  two workers / one thread: {_range(two, '.2f')}")
    if not with_reference:
        print("no reference was run (--reference DIR runs HumanML3D's process_file side by side); no ratio to it")
        got = np.median(fps["batched, 1 thread"])
        print(f"goal: batched on one thread ≥ {GOAL_FPS:,} frames/s: {'met' if got >= GOAL_FPS else 'MISSED'}")
        return [] if got >= GOAL_FPS else [f"batched, 1 thread: {got:,.0f} < {GOAL_FPS:,} frames/s"]
    ref = fps["reference process_file"]
    print("× the reference, same round, median (range):")
    for name, goal in GOALS.items():
        ratios = [a / b for a, b in zip(fps[name], ref, strict=True)]
        ok = np.median(ratios) >= goal
        print(f"  {name:<24} ×{_range(ratios, '.1f')}   goal ≥ {goal:g}×: {'met' if ok else 'MISSED'}")
        if not ok:
            missed.append(f"{name}: ×{np.median(ratios):.1f} < {goal:g}×")
    return missed


def smpl_bench(seed: int, seconds: float = 60.0) -> None:
    """SMPL+H → joints with the real smplx forward, on a synthetic model of the real SMPL+H size."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        write_body_model(tmp, "smplh", "male", n_vertices=6890)
        write_amass_motion(Path(tmp) / "seq.npz", [Segment("walk", seconds)], np.random.default_rng(seed), fps=20.0)
        params = read_amass_npz(Path(tmp) / "seq.npz")
        models = BodyModels(tmp)
        models.get("smplh", "male")
        print(f"SMPL+H → joints (smplx forward, 6,890 vertices, torch {torch.get_num_threads()} threads):")
        for full in (True, False):
            t0 = time.perf_counter()
            j = models.joints(params, full_forward=full)
            t = time.perf_counter() - t0
            name = "full smplx forward (mesh posed)" if full else "joints only (smplx lbs pieces)"
            print(f"  {name:<34} {len(j) / t:>9,.0f} frames/s")
        t0 = time.perf_counter()
        amass_joints(params, models)
        print(f"  amass_joints (20 fps input, default batch): {len(params) / (time.perf_counter() - t0):,.0f} frames/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, help="clips per round (default 400; 120 with --quick)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", help="a local checkout of github.com/EricGuo5513/HumanML3D")
    ap.add_argument("--quick", action="store_true", help="small sizes and no SMPL+H section (make bench-check)")
    args = ap.parse_args()
    n_clips = args.clips or (120 if args.quick else 400)
    reference, torch_threads = None, None
    if args.reference:
        import torch

        from bench.humanml3d_reference import load_reference

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the reference as its notebook runs it, on one core
        warnings.simplefilter("ignore", UserWarning)  # torch.cross without dim, in the reference
        reference = load_reference(args.reference)
        commit = reference.commit or "unknown: not a git work tree"
        print(f"reference: HumanML3D process_file from {reference.checkout} (commit {commit}), torch 1 thread")
    clips = make_clips(n_clips, args.seed)
    print(f"{n_clips} clips, {sum(len(c) for c in clips):,} frames, {args.rounds} rounds, load {os.getloadavg()[0]:.1f}")
    missed = report(measure(clips, reference, args.rounds), reference is not None)
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    if not args.quick:
        smpl_bench(args.seed)
    flags = f" --clips {n_clips} --rounds {args.rounds} --seed {args.seed}" + (" --quick" if args.quick else "")
    print(f"reproduce: .venv/bin/python bench/kinematics.py{flags}" + (" --reference DIR" if reference else ""))
    if missed:
        print("goals missed: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
