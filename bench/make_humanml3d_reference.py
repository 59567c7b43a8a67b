"""Write tests/data/humanml3d_reference/: varied raw joint clips and what HumanML3D's own code makes of them.

    .venv/bin/python bench/make_humanml3d_reference.py --reference /path/to/HumanML3D [--out DIR]

The clips are synthetic motions (``pipeline.synthetic_motion``) made hard on purpose: turns, jumps,
crouches, fast runs, walks backwards, several actions in a row, odd body proportions, random heading and
place, one mirrored clip. Each is fed, as float32, to the reference's ``process_file(joints, 0.002)``
and its features to the reference's ``recover_from_ric`` (``bench.humanml3d_reference`` runs them from
the user's checkout). Only the data is written: ``clips.npz`` (joints_NN), ``reference.npz``
(features_NN, recovered_NN) and ``clips.json`` (what each clip is). ``tests/stages/
test_kinematics_reference.py`` compares movid's kinematics with them value by value.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.humanml3d_reference import load_reference  # noqa: E402
from pipeline.synthetic_motion import Segment, synthesize_joints  # noqa: E402
from schemas.motion import PARENTS  # noqa: E402
from stages.kinematics import mirror_joints  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "humanml3d_reference"
FEET_THRESHOLD = 0.002
LEGS = (1, 2, 4, 5, 7, 8, 10, 11)  # hips to toes: the bones stretched to give a body odd proportions
ARMS = (13, 14, 16, 17, 18, 19, 20, 21)

# (name, segments, frames, body scale, leg stretch, arm stretch, frame step): a step of 2 plays the
# motion twice as fast (a sprint from a run).
S = Segment
CLIPS = [
    ("walk", [S("walk", 10)], 120, 1.0, 1.0, 1.0, 1),
    ("walk_turn_left", [S("walk", 10, turn="left")], 196, 0.92, 1.0, 1.0, 1),
    ("walk_turn_right", [S("walk", 10, turn="right")], 160, 1.1, 1.0, 1.0, 1),
    ("walk_backward", [S("walk", 10, direction="backward")], 90, 1.0, 1.0, 1.0, 1),
    ("run", [S("run", 10)], 100, 1.0, 1.0, 1.0, 1),
    ("sprint", [S("run", 12)], 110, 1.05, 1.1, 1.0, 2),
    ("sprint_turn", [S("run", 12, turn="left")], 96, 0.85, 1.0, 1.0, 2),
    ("run_turn_right", [S("run", 10, turn="right")], 150, 1.0, 1.0, 1.0, 1),
    ("jumps", [S("jump", 6, repeats=3)], 120, 1.0, 1.0, 1.0, 1),
    ("jump_short", [S("jump", 3, repeats=1)], 40, 0.7, 1.0, 1.0, 1),
    ("squats", [S("squat", 8, repeats=3)], 160, 1.0, 1.0, 1.0, 1),
    ("deep_squat_tall", [S("squat", 5, repeats=1)], 100, 1.35, 1.2, 1.0, 1),
    ("kick_left", [S("kick", 4, side="left", repeats=2)], 80, 1.0, 1.0, 1.0, 1),
    ("kick_right", [S("kick", 4, side="right")], 70, 0.6, 1.0, 1.0, 1),
    ("wave_left", [S("wave", 5, side="left")], 100, 1.0, 1.0, 1.3, 1),
    ("wave_right", [S("wave", 5)], 64, 1.0, 0.8, 1.0, 1),
    ("raise_arms", [S("raise_arms", 5)], 100, 1.0, 1.0, 1.0, 1),
    ("idle", [S("idle", 5)], 90, 1.2, 1.0, 1.0, 1),
    ("walk_then_run", [S("walk", 4), S("run", 4)], 160, 1.0, 1.0, 1.0, 1),
    ("walk_turn_jump", [S("walk", 3, turn="left"), S("jump", 3, repeats=2)], 120, 1.0, 1.15, 0.85, 1),
    ("squat_then_kick", [S("squat", 3), S("kick", 3, side="left")], 120, 1.0, 1.0, 1.0, 1),
    ("run_about_turn", [S("run", 3, turn="left"), S("run", 3, turn="left")], 120, 1.0, 1.0, 1.0, 1),
    ("wave_walk", [S("wave", 2), S("walk", 7, turn="right")], 175, 0.9, 0.9, 1.2, 1),
    ("long_legs_walk", [S("walk", 10)], 140, 1.0, 1.35, 0.9, 1),
    ("short_legs_run", [S("run", 10, turn="right")], 130, 1.0, 0.7, 1.1, 1),
]
MIRRORED = "walk_turn_jump"  # the mirrored clip (HumanML3D's M clips) repeats this one, swapped


def _reproportion(joints: np.ndarray, legs: float, arms: float) -> np.ndarray:
    """The same motion on a body whose legs and arms are ``legs`` and ``arms`` times as long."""
    bones = joints[:, 1:] - joints[:, list(PARENTS[1:])]
    scale = np.ones(len(PARENTS))
    scale[list(LEGS)], scale[list(ARMS)] = legs, arms
    out = np.empty_like(joints)
    out[:, 0] = joints[:, 0] * [1.0, legs, 1.0]  # longer legs lift the pelvis
    for j in range(1, len(PARENTS)):
        out[:, j] = out[:, PARENTS[j]] + bones[:, j - 1] * scale[j]
    return out


def make_clips(seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The named raw clips (float32), each at a random heading and place."""
    rng = np.random.default_rng(seed)
    clips = []
    for name, segments, frames, size, legs, arms, step in CLIPS:
        j = synthesize_joints(segments, rng).astype(np.float64)[::step][:frames]
        if len(j) != frames:
            raise ValueError(f"{name}: {len(j)} frames generated, {frames} wanted")
        j = _reproportion(j, legs, arms) * size
        yaw = rng.uniform(-np.pi, np.pi)
        c, s = np.cos(yaw), np.sin(yaw)
        j = j @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]) + [rng.normal(0, 3), rng.uniform(-0.5, 0.5), rng.normal(0, 3)]
        clips.append((name, j.astype(np.float32)))
    mirrored = dict(clips)[MIRRORED]
    clips.append((f"{MIRRORED}_mirrored", mirror_joints(mirrored)))
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="a local checkout of github.com/EricGuo5513/HumanML3D")
    ap.add_argument("--commit", help="the checkout's commit, where it is not a git work tree")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ref = load_reference(args.reference, args.commit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clips = make_clips(args.seed)
    inputs, outputs, index = {}, {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.cross without dim, in the reference
        for k, (name, joints) in enumerate(clips):
            features = ref.features(joints, FEET_THRESHOLD)
            inputs[f"joints_{k:02d}"] = joints
            outputs[f"features_{k:02d}"] = features.astype(np.float32)
            outputs[f"recovered_{k:02d}"] = ref.recover_from_ric(features).astype(np.float32)
            index.append({"key": f"{k:02d}", "name": name, "frames": len(joints)})
    np.savez_compressed(out / "clips.npz", **inputs)
    np.savez_compressed(out / "reference.npz", **outputs)
    meta = {"reference_commit": ref.commit, "feet_threshold": FEET_THRESHOLD, "seed": args.seed, "clips": index}
    (out / "clips.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"{len(clips)} clips, {sum(len(j) for _, j in clips)} frames, reference {ref.commit}; {size / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()
