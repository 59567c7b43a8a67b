"""Plausible synthetic motion on HumanML3D's 22-joint skeleton, for sample data and tests.

Actions (walk, run, jump, wave, squat, kick, raise arms, idle) are joint-angle curves driven through
forward kinematics on the uniform target skeleton (``schemas.motion``), so bones keep their lengths,
feet touch the floor and captions describe what really happens. These are raw joints, as HumanML3D's
``joints/`` folder holds before featurization (``stages.kinematics``). Convention: Y up, the first frame
faces +Z, the person's left is +X.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.motion import NUM_JOINTS, PARENTS, RAW_OFFSETS, TARGET_BONE_LENGTHS

__all__ = ["ACTIONS", "OFFSETS", "Segment", "forward_kinematics", "segment_bounds", "synthesize_joints", "synthesize_pose"]

FPS = 20.0
OFFSETS = np.zeros((NUM_JOINTS, 3), np.float64)
OFFSETS[1:] = RAW_OFFSETS[1:] * TARGET_BONE_LENGTHS[:, None]
FOOT_JOINTS = (7, 8, 10, 11)
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 1, 2, 4, 5, 7, 8
SPINE1, SPINE2, SPINE3, NECK, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW = 3, 6, 9, 12, 16, 17, 18, 19
ACTIONS = ("walk", "run", "jump", "wave", "squat", "kick", "raise_arms", "idle")


def _rot(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(angle), np.zeros_like(angle)
    m = {"x": [[o, z, z], [z, c, -s], [z, s, c]], "y": [[c, z, s], [z, o, z], [-s, z, c]],
         "z": [[c, -s, z], [s, c, z], [z, z, o]]}[axis]  # fmt: skip
    return np.moveaxis(np.array(m), (0, 1), (-2, -1))


@dataclass(frozen=True)
class Segment:
    action: str
    seconds: float
    side: str = "right"  # hand or leg used (wave, kick)
    direction: str = "forward"  # forward | backward (walk, run)
    turn: str = "none"  # none | left | right
    repeats: int = 1  # squats, jumps, kicks


def segment_bounds(segments: list[Segment], fps: float = FPS) -> list[tuple[int, int]]:
    """Frame span [start, end) of each segment in a clip made of ``segments``."""
    ends = np.cumsum([max(2, round(seg.seconds * fps)) for seg in segments])
    return [(int(a), int(b)) for a, b in zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)]


def _gait(seg: Segment, t: np.ndarray, ramp: np.ndarray, phase: float, rng: np.random.Generator, add):
    """Legs, arms and spine of a walk or run (``add(joint, axis, angles)``); its forward speed and lift."""
    run = seg.action == "run"
    freq = rng.uniform(2.6, 3.0) if run else rng.uniform(0.85, 1.0)  # gait cycles per second
    hip_a, knee_a = (0.75, 1.3) if run else (0.4, 0.6)
    w = 2 * np.pi * freq * t + phase
    sgn = -1.0 if seg.direction == "backward" else 1.0
    for hip, knee, ph in ((L_HIP, L_KNEE, 0.0), (R_HIP, R_KNEE, np.pi)):
        add(hip, "x", -hip_a * np.sin(w + ph) * ramp * sgn)
        add(knee, "x", knee_a * np.clip(np.sin(w + ph + sgn * np.pi / 2), 0, None) * ramp)
    for sh, el, ph in ((L_SHOULDER, L_ELBOW, np.pi), (R_SHOULDER, R_ELBOW, 0.0)):
        add(sh, "x", -(0.6 if run else 0.3) * np.sin(w + ph) * ramp * sgn)
        add(el, "x", -(1.3 if run else 0.25) * ramp)
    add(SPINE1, "x", (0.25 if run else 0.05) * ramp)
    speed = sgn * (rng.uniform(2.6, 3.4) if run else rng.uniform(1.0, 1.4)) * ramp
    lift = (0.04 if run else 0.015) * np.abs(np.sin(w)) * ramp
    return speed, lift


def _jump_or_squat(seg: Segment, t: np.ndarray, add, lift: np.ndarray) -> np.ndarray:
    """Legs, spine and arms of ``seg.repeats`` jumps or squats; the lift (jumps leave the ground)."""
    depth = 0.55 if seg.action == "jump" else 1.2
    cyc = np.clip(t * seg.repeats / seg.seconds, 0, seg.repeats)
    bend = np.sin(np.pi * (cyc % 1.0)) ** 2 * depth
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        add(hip, "x", -bend)
        add(knee, "x", 2 * bend)
        add(ankle, "x", -bend)
    add(SPINE1, "x", 0.4 * bend)
    if seg.action == "jump":
        air = np.clip(np.sin(2 * np.pi * (cyc % 1.0) - np.pi / 2), 0, None)
        for sh in (L_SHOULDER, R_SHOULDER):
            add(sh, "x", -2.2 * air)
        return 0.35 * air
    for sh in (L_SHOULDER, R_SHOULDER):
        add(sh, "x", -1.4 * bend / depth)
    return lift


def _segment_curves(seg: Segment, n: int, rng: np.random.Generator, fps: float = FPS):
    """Per-frame local angles {joint: [(axis, angle)]}, forward speed (m/s), yaw rate (rad/s), lift (m)."""
    t = np.arange(n) / fps
    phase = rng.uniform(0, 2 * np.pi)
    angles: dict[int, list] = {}
    speed, yaw_rate, lift = np.zeros(n), np.zeros(n), np.zeros(n)
    ramp = np.clip(np.minimum(t, t[::-1]) / 0.4, 0, 1)  # ease in/out so segments join smoothly

    def add(j, axis, a):
        angles.setdefault(j, []).append((axis, a))

    side_sign = 1.0 if seg.side == "left" else -1.0
    shoulder, elbow = (L_SHOULDER, L_ELBOW) if seg.side == "left" else (R_SHOULDER, R_ELBOW)
    if seg.action in ("walk", "run"):
        speed, lift = _gait(seg, t, ramp, phase, rng, add)
    elif seg.action in ("jump", "squat"):
        lift = _jump_or_squat(seg, t, add, lift)
    elif seg.action == "wave":
        add(shoulder, "z", side_sign * 2.4 * ramp)
        add(elbow, "y", -side_sign * 0.4 * ramp)
        add(elbow, "z", side_sign * (0.5 + 0.45 * np.sin(2 * np.pi * 2.0 * t + phase)) * ramp)
    elif seg.action == "kick":
        hip, knee = (L_HIP, L_KNEE) if seg.side == "left" else (R_HIP, R_KNEE)
        cyc = np.clip(t * seg.repeats / seg.seconds, 0, seg.repeats)
        swing = np.sin(np.pi * (cyc % 1.0)) ** 4
        add(hip, "x", -1.4 * swing)
        add(knee, "x", 0.9 * np.sin(np.pi * (cyc % 1.0)) ** 2 * (1 - swing))
        add(SPINE1, "x", -0.15 * swing)
        add(L_SHOULDER, "z", 0.5 * swing)
        add(R_SHOULDER, "z", -0.5 * swing)
    elif seg.action == "raise_arms":
        add(L_SHOULDER, "z", 2.8 * ramp)
        add(R_SHOULDER, "z", -2.8 * ramp)
    elif seg.action == "idle":
        sway = 0.05 * np.sin(2 * np.pi * 0.3 * t + phase)
        add(SPINE1, "z", sway)
        add(NECK, "y", 0.3 * np.sin(2 * np.pi * 0.2 * t))
    else:
        raise ValueError(f"unknown action {seg.action!r}")
    if seg.turn != "none":
        yaw_rate = (1.0 if seg.turn == "left" else -1.0) * (np.pi / 2) / seg.seconds * np.ones(n)
    return angles, speed, yaw_rate, lift


def forward_kinematics(local: np.ndarray, root: np.ndarray) -> np.ndarray:
    """local: (T, 22, 3, 3) rotations (the root's is its global orientation); root: (T, 3)."""
    T = len(root)
    glob = np.empty_like(local)
    pos = np.empty((T, NUM_JOINTS, 3))
    glob[:, 0], pos[:, 0] = local[:, 0], root
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        pos[:, j] = pos[:, p] + glob[:, p] @ OFFSETS[j]
        glob[:, j] = glob[:, p] @ local[:, j]
    return pos


def synthesize_pose(segments: list[Segment], rng: np.random.Generator, fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """Local joint rotations (T, 22, 3, 3) — the root's is its global orientation — and root positions
    (T, 3) for a sequence of segments, T = their frames + 1 (featurization takes one). Each joint's
    rotation turns its children, as in SMPL, about the rest pose of ``OFFSETS``."""
    bounds = segment_bounds(segments, fps)
    T = bounds[-1][1] + 1
    local = np.broadcast_to(np.eye(3), (T, NUM_JOINTS, 3, 3)).copy()
    speed, yaw_rate, lift = np.zeros(T), np.zeros(T), np.zeros(T)
    for seg, (start, end) in zip(segments, bounds, strict=True):
        end = T if end == T - 1 else end  # the last segment also drives the extra frame
        angles, sp, yr, lf = _segment_curves(seg, end - start, rng, fps)
        sl = slice(start, end)
        for j, rots in angles.items():
            for axis, a in rots:
                local[sl, j] = local[sl, j] @ _rot(axis, a)
        speed[sl], yaw_rate[sl], lift[sl] = sp, yr, lf
    heading = np.concatenate([[0.0], np.cumsum(yaw_rate[:-1]) / fps])
    local[:, 0] = _rot("y", heading) @ local[:, 0]
    step = speed / fps
    root = np.zeros((T, 3))
    root[1:, 0] = np.cumsum((step * np.sin(heading))[:-1])
    root[1:, 2] = np.cumsum((step * np.cos(heading))[:-1])
    joints = forward_kinematics(local, root)
    root[:, 1] += lift - joints[:, FOOT_JOINTS, 1].min(axis=1)  # feet on the floor, except in the air
    return local, root


def synthesize_joints(segments: list[Segment], rng: np.random.Generator) -> np.ndarray:
    """(T, 22, 3) joint positions of ``synthesize_pose``."""
    return forward_kinematics(*synthesize_pose(segments, rng)).astype(np.float32)
