"""Speed of HumanML3D featurization: ``joints_to_features`` on 1,000 clips of 40–196 frames.

    .venv/bin/python bench/kinematics.py [--clips 1000] [--seed 0]

The reference notebook (HumanML3D ``process_file``) runs clip by clip in Python loops: about 6,400
frames/s on one core in the project's notes, 10,227 frames/s when it was run on these same clips on this
machine kind (2026-11-24, torch 2.13 CPU, one thread; the reference code is not part of movid, so it is
not rerun here). Goal: ≥ 120,000 frames/s, so HumanML3D's ~4.1 M frames (mirrors included) featurize in
under 35 s. Clips are synthetic motions on random body sizes, headings, positions and speeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.synthetic_body import write_amass_motion, write_body_model  # noqa: E402
from pipeline.synthetic_motion import ACTIONS, Segment, synthesize_joints  # noqa: E402
from stages.kinematics import joints_to_features, joints_to_features_batch  # noqa: E402
from stages.smpl import BodyModels, amass_joints, read_amass_npz  # noqa: E402

HUMANML3D_FRAMES = 4.1e6
REFERENCE_FPS = 10_227  # measured as described above


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    clips = make_clips(args.clips, args.seed)
    frames = sum(len(c) for c in clips)
    joints_to_features_batch(clips[:8])  # warm-up (caches the smoothing matrices of those lengths)

    t0 = time.perf_counter()
    joints_to_features_batch(clips)
    t_batch = time.perf_counter() - t0
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    joints_to_features_batch(clips, workers=workers)
    t_threads = time.perf_counter() - t0
    t0 = time.perf_counter()
    for c in clips:
        joints_to_features(c)
    t_single = time.perf_counter() - t0

    print(f"{args.clips} clips, {frames} frames, {os.cpu_count()} cores")
    for name, t in ((f"batch, {workers} threads", t_threads), ("batch, 1 thread", t_batch),
                    ("joints_to_features, clip by clip", t_single)):
        fps = frames / t
        print(f"  {name:<38} {t:6.2f} s  {fps:>10,.0f} frames/s  ×{fps / REFERENCE_FPS:5.1f} the reference  "
              f"HumanML3D in {HUMANML3D_FRAMES / fps:5.1f} s")
    print(f"goal: ≥ 120,000 frames/s; the reference: {REFERENCE_FPS:,} frames/s (see the docstring)")
    smpl_bench(args.seed)
    print(f"reproduce: .venv/bin/python bench/kinematics.py --clips {args.clips} --seed {args.seed}")


if __name__ == "__main__":
    main()
