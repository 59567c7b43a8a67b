"""HumanML3D's motion representation: joints ⇄ 263-d features, and the left/right mirror.

``joints_to_features`` follows the reference (HumanML3D ``motion_representation.ipynb``: uniform
skeleton, floor, origin, face +Z, then IK-based features) step by step, including its quirks — the root
rotation comes from a Gaussian-smoothed facing direction (σ = 20 frames), the first frame's root
rotation is forced to identity, and the arm chains' first rotations are relative to the root, not to
spine3. It is vectorized over frames and over clips: a batch of clips is one array of frames, and the
few per-clip steps work on segment indices.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from schemas.motion import FEATURE_DIM, FEATURE_LAYOUT, NUM_JOINTS, PARENTS, RAW_OFFSETS, TARGET_BONE_LENGTHS
from stages.rotations import cross, qbetween, qinv, qmul, qrot, quat_to_cont6d

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
FACE_JOINTS = (2, 1, 17, 16)  # right hip, left hip, right shoulder, left shoulder
LEG_JOINTS = (5, 8)  # right knee, right ankle: the leg length that sets the retargeting scale
FEET_LEFT, FEET_RIGHT = (7, 10), (8, 11)
SMOOTH_SIGMA = 20.0  # frames; the reference smooths the facing direction with gaussian_filter1d(σ=20)
LEFT_CHAIN = (1, 4, 7, 10, 13, 16, 18, 20)
RIGHT_CHAIN = (2, 5, 8, 11, 14, 17, 19, 21)
_PARENTS = np.array(PARENTS[1:])
# Featurization computes in float32, as the reference does (its quaternion code is float32 torch).
_F = np.float32
_UP, _FORWARD, _XZ = np.array([0, 1, 0], _F), np.array([0, 0, 1], _F), np.array([1, 0, 1], _F)
# The rotation accumulated before joint j's own: the root's for bones leaving the root and for the collars
# (the reference restarts each arm chain from the root rotation), else that of the bone ending at the parent.
_FROM_ROOT = np.array([p == 0 or j in (13, 14) for j, p in enumerate(PARENTS) if j > 0])


def target_offsets_from_joints(joints_frame: np.ndarray) -> np.ndarray:
    """Target offsets (22, 3) from one frame of joints: the raw directions scaled by its bone lengths."""
    lengths = np.linalg.norm(joints_frame[1:] - joints_frame[_PARENTS], axis=-1)
    offsets = np.zeros((NUM_JOINTS, 3))
    offsets[1:] = RAW_OFFSETS[1:] * lengths[:, None]
    return offsets


def _gaussian_kernel(sigma: float = SMOOTH_SIGMA, truncate: float = 4.0) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _smooth_per_clip(x: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """scipy's gaussian_filter1d(x, σ, axis=0, mode='nearest') applied to each clip separately, for all
    clips in one convolution: each clip is padded with copies of its edge frames, then 'valid' taps."""
    kernel = _gaussian_kernel()
    r = len(kernel) // 2
    gather = np.concatenate([s + np.clip(np.arange(-r, t + r), 0, t - 1) for s, t in zip(starts, lengths, strict=True)])
    padded = x[gather]
    out_at = np.concatenate([[0], np.cumsum(lengths + 2 * r)[:-1]])  # padded start of each clip
    keep = np.repeat(out_at - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(len(x))
    return np.stack([np.convolve(padded[:, d], kernel, mode="valid")[keep] for d in range(x.shape[1])], axis=1)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _facing(p: np.ndarray, hips_reversed: bool = False) -> np.ndarray:
    """cross(up, across) with across = hips + shoulders, right minus left. ``hips_reversed`` reproduces the
    reference's IK, which unpacks (2, 1, 17, 16) as (l_hip, r_hip, …) and so takes left minus right hip."""
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS
    hips = p[..., r_hip, :] - p[..., l_hip, :]
    across = _normalize((-hips if hips_reversed else hips) + (p[..., r_sdr, :] - p[..., l_sdr, :]))
    return cross(np.broadcast_to(_UP, across.shape), across)  # horizontal; normalized by the callers as the reference does


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
    tgt = (DEFAULT_TARGET_OFFSETS if target_offsets is None else np.asarray(target_offsets)).astype(_F)
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
    joints = np.concatenate(clips).astype(_F)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    clip_of = np.repeat(np.arange(len(clips)), lengths)
    n = len(joints)

    # 1. Uniform skeleton: each bone keeps its direction and takes the target's length; the root path is
    #    scaled by the ratio of leg lengths (first frame). IK then FK in the reference amounts to this.
    bones = joints[:, 1:] - joints[:, _PARENTS]
    first_len = np.linalg.norm(bones[starts], axis=-1)  # (clips, 21)
    src_leg = first_len[:, LEG_JOINTS[0] - 1] + first_len[:, LEG_JOINTS[1] - 1]
    tgt_leg = np.abs(tgt[LEG_JOINTS[0]]).max() + np.abs(tgt[LEG_JOINTS[1]]).max()
    tgt_len = np.linalg.norm(tgt[1:], axis=-1)
    dirs = bones / np.linalg.norm(bones, axis=-1, keepdims=True)
    p = np.empty_like(joints)
    p[:, 0] = joints[:, 0] * (tgt_leg / src_leg)[clip_of, None]
    for j in range(1, NUM_JOINTS):
        p[:, j] = p[:, PARENTS[j]] + dirs[:, j - 1] * tgt_len[j - 1]

    # 2. Floor at y = 0, first root at the XZ origin, first frame facing +Z (per clip).
    p[..., 1] -= np.minimum.reduceat(p[..., 1].min(axis=1), starts)[clip_of, None]
    p -= (p[starts, 0] * _XZ)[clip_of, None]
    face_init = qbetween(_normalize(_facing(p[starts])), _FORWARD)
    p = qrot(face_init[clip_of, None], p)

    # 3. Root rotation per frame from the smoothed facing direction (as the reference's IK computes it);
    #    identity on each first frame.
    forward = _smooth_per_clip(_facing(p, hips_reversed=True), starts, lengths)
    r_rot = qbetween(_normalize(forward), _FORWARD)
    r_rot[starts] = (1.0, 0.0, 0.0, 0.0)

    # 4. Local joint rotations (IK against the raw offsets) → continuous 6-D.
    q_bone = qbetween(RAW_OFFSETS[1:].astype(_F), _normalize(p[:, 1:] - p[:, _PARENTS]))  # (n, 21, 4)
    prev = np.where(_FROM_ROOT[None, :, None], r_rot[:, None], q_bone[:, _PARENTS - 1])
    rot6d = quat_to_cont6d(qmul(qinv(prev), q_bone))

    # 5. Per-frame features from frame i to i+1 (the last frame of each clip has no successor).
    keep = np.ones(n, bool)
    keep[starts + lengths - 1] = False
    i = np.flatnonzero(keep)
    out = np.empty((len(i), FEATURE_DIM), _F)
    out[:, FEATURE_LAYOUT["root_rot_velocity"]] = np.arcsin(qmul(r_rot[i + 1], qinv(r_rot[i]))[:, 2:3])
    out[:, FEATURE_LAYOUT["root_linear_velocity"]] = qrot(r_rot[i + 1], p[i + 1, 0] - p[i, 0])[:, [0, 2]]
    out[:, FEATURE_LAYOUT["root_y"]] = p[i, 0, 1:2]
    ric = p[i, 1:] - (p[i, 0] * _XZ)[:, None]
    out[:, FEATURE_LAYOUT["ric"]] = qrot(r_rot[i, None], ric).reshape(len(i), -1)
    out[:, FEATURE_LAYOUT["rot6d"]] = rot6d[i].reshape(len(i), -1)
    out[:, FEATURE_LAYOUT["local_velocity"]] = qrot(r_rot[i, None], p[i + 1] - p[i]).reshape(len(i), -1)
    step = ((p[i + 1] - p[i]) ** 2).sum(-1)
    out[:, FEATURE_LAYOUT["foot_contact"]] = step[:, list(FEET_LEFT + FEET_RIGHT)] < feet_threshold
    return np.split(out.astype(np.float32), np.cumsum(lengths - 1)[:-1])


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
