"""HumanML3D's motion representation: joints ⇄ 263-d features, and the left/right mirror.

``joints_to_features`` is HumanML3D's ``process_file`` (``motion_representation.ipynb``: uniform
skeleton, floor, origin, face +Z, then IK-based features) step by step, including its quirks — the root
rotation comes from a Gaussian-smoothed facing direction (σ = 20 frames), the first frame's root
rotation is forced to identity, and the arm chains' first rotations are relative to the root, not to
spine3 — and in its precision: it rounds where the reference rounds, so it matches the reference's
output per value (``stages.kinematics_featurize`` has the arithmetic; tests/stages/
test_kinematics_reference.py the proof). It is vectorized over frames and over clips: a batch of clips
is one array of frames, and the few per-clip steps work on segment indices.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from schemas.motion import FEATURE_LAYOUT, NUM_JOINTS, PARENTS, RAW_OFFSETS, TARGET_BONE_LENGTHS
from stages.kinematics_featurize import featurize_block
from stages.rotations import qinv, qrot

__all__ = [
    "DEFAULT_TARGET_OFFSETS",
    "features_to_joints",
    "joints_to_features",
    "joints_to_features_batch",
    "mirror_caption",
    "mirror_joints",
    "target_offsets_from_joints",
]

# HumanML3D's uniform target skeleton: raw directions × bone lengths (as the reference's get_offsets_joints).
DEFAULT_TARGET_OFFSETS = np.zeros((NUM_JOINTS, 3))
DEFAULT_TARGET_OFFSETS[1:] = RAW_OFFSETS[1:] * TARGET_BONE_LENGTHS[:, None].astype(np.float64)
FEET_LEFT, FEET_RIGHT = (7, 10), (8, 11)
LEFT_CHAIN = (1, 4, 7, 10, 13, 16, 18, 20)
RIGHT_CHAIN = (2, 5, 8, 11, 14, 17, 19, 21)
_PARENTS = np.array(PARENTS[1:])


def target_offsets_from_joints(joints_frame: np.ndarray) -> np.ndarray:
    """Target offsets (22, 3) from one frame of joints: the raw directions scaled by its bone lengths."""
    lengths = np.linalg.norm(joints_frame[1:] - joints_frame[_PARENTS], axis=-1)
    offsets = np.zeros((NUM_JOINTS, 3))
    offsets[1:] = RAW_OFFSETS[1:] * lengths[:, None]
    return offsets


CHUNK_FRAMES = 2048  # frames featurized together: big enough to amortize numpy calls, small enough for cache


def joints_to_features_batch(
    clips: Sequence[np.ndarray],
    target_offsets: np.ndarray | None = None,
    feet_threshold: float = 0.002,
    workers: int = 1,
) -> list[np.ndarray]:
    """``joints_to_features`` for many clips at once; returns one (T_i - 1, 263) float32 array per clip.
    ``workers`` > 1 featurizes chunks of clips on that many threads (numpy releases the GIL)."""
    for i, c in enumerate(clips):
        if c.ndim != 3 or c.shape[1:] != (NUM_JOINTS, 3) or len(c) < 2:
            raise ValueError(f"clip {i}: joints must be (T >= 2, {NUM_JOINTS}, 3), got {c.shape}")
    tgt = (DEFAULT_TARGET_OFFSETS if target_offsets is None else np.asarray(target_offsets)).astype(np.float32)
    groups: list[list[np.ndarray]] = [[]]
    frames = 0
    for c in clips:
        if frames >= CHUNK_FRAMES:
            groups.append([])
            frames = 0
        groups[-1].append(c)
        frames += len(c)
    if workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(lambda g: _featurize(g, tgt, feet_threshold), groups))
    else:
        parts = [_featurize(g, tgt, feet_threshold) for g in groups if g]
    return [f for part in parts for f in part]


def _featurize(clips: Sequence[np.ndarray], tgt: np.ndarray, feet_threshold: float) -> list[np.ndarray]:
    lengths = np.array([len(c) for c in clips])
    starts = np.cumsum(lengths) - lengths
    joints = np.asarray(clips[0], np.float32) if len(clips) == 1 else np.concatenate(clips, dtype=np.float32)
    rows = featurize_block(joints, starts, lengths, tgt, feet_threshold)
    return [rows[s : s + t - 1] for s, t in zip(starts, lengths, strict=True)]


def joints_to_features(joints: np.ndarray, target_offsets: np.ndarray | None = None,
                       feet_threshold: float = 0.002) -> np.ndarray:  # fmt: skip
    """(T, 22, 3) joint positions (Y up, metres, 20 fps) → (T-1, 263) HumanML3D features, float32.

    ``target_offsets`` (22, 3) is the target skeleton as the reference's ``get_offsets_joints`` builds it
    (raw directions × bone lengths; see ``target_offsets_from_joints``); as in the reference, only its
    bone lengths and leg length matter. Default: HumanML3D's uniform skeleton."""
    return joints_to_features_batch([joints], target_offsets, feet_threshold)[0]


def features_to_joints(features: np.ndarray) -> np.ndarray:
    """HumanML3D's ``recover_from_ric``: (…, T, 263) → (…, T, 22, 3), from the rotation-invariant
    positions, the root's height and its integrated velocities."""
    f = np.asarray(features, dtype=np.float64)
    rot_vel = f[..., FEATURE_LAYOUT["root_rot_velocity"]][..., 0]
    ang = np.zeros_like(rot_vel)
    ang[..., 1:] = np.cumsum(rot_vel[..., :-1], axis=-1)
    # The reference stores the root rotation as the quaternion (cos a, 0, sin a, 0), a turn of 2a about Y.
    r_rot = np.stack([np.cos(ang), np.zeros_like(ang), np.sin(ang), np.zeros_like(ang)], axis=-1)
    step = np.zeros(f.shape[:-1] + (3,))
    step[..., 1:, 0] = f[..., :-1, FEATURE_LAYOUT["root_linear_velocity"].start]
    step[..., 1:, 2] = f[..., :-1, FEATURE_LAYOUT["root_linear_velocity"].start + 1]
    root = np.cumsum(qrot(qinv(r_rot), step), axis=-2)
    root[..., 1] = f[..., FEATURE_LAYOUT["root_y"].start]
    ric = f[..., FEATURE_LAYOUT["ric"]].reshape(f.shape[:-1] + (NUM_JOINTS - 1, 3))
    body = qrot(qinv(r_rot)[..., None, :], ric)
    body[..., [0, 2]] += root[..., None, [0, 2]]
    return np.concatenate([root[..., None, :], body], axis=-2).astype(np.float32)


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """HumanML3D's ``swap_left_right``: negate X and swap the left and right chains (the ``M`` clips)."""
    out = np.array(joints, copy=True)
    out[..., 0] *= -1
    out[..., list(LEFT_CHAIN) + list(RIGHT_CHAIN), :] = out[..., list(RIGHT_CHAIN) + list(LEFT_CHAIN), :]
    return out


_SIDE = re.compile(r"\b(left|right)(?=(?:ward|wards|most|hand|handed|side)?\b)", re.IGNORECASE)
_SPIN = re.compile(r"\b(counter-?clockwise|anti-?clockwise|clockwise)\b", re.IGNORECASE)


def _same_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    return word.capitalize() if like[:1].isupper() else word


def mirror_caption(text: str, spin: bool = False) -> str:
    """The caption of a mirrored clip: ``left`` ↔ ``right`` (also in ``leftward``, ``right-hand``,
    ``left/ADJ`` tokens…), case kept, as in HumanML3D's ``M`` texts. ``spin=True`` also swaps clockwise
    and counterclockwise, which a mirror reverses too (HumanML3D's texts leave them)."""
    text = _SIDE.sub(lambda m: _same_case("right" if m.group(1).lower() == "left" else "left", m.group(1)), text)
    if spin:
        text = _SPIN.sub(lambda m: _same_case("clockwise" if m.group(1).lower() != "clockwise" else
                                              "counterclockwise", m.group(1)), text)  # fmt: skip
    return text
