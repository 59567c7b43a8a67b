"""Implausible variants of a plausible clip, one per plausibility check, each failing that check alone
(the checks run most specific first; see stages/validate.py). Joints: T×22×3 metres, y up, floor at 0."""

from __future__ import annotations

import numpy as np

from schemas.motion import PARENTS

FPS = 20.0


def _bounce(joints: np.ndarray) -> np.ndarray:
    """The whole body 1.5 m up on every other frame: every joint moves 30 m/s, yet no bone changes length,
    the pelvis does not move over the ground and nothing goes below the floor."""
    out = joints.copy()
    out[1::2, :, 1] += 1.5
    return out


def implausible_variants(joints: np.ndarray) -> dict[str, np.ndarray]:
    """{quarantine reason: joints} from a plausible ``joints`` clip."""
    T = len(joints)
    teleport = joints.copy()
    teleport[T // 2 :, :, 0] += 2.0  # the whole body jumps 2 m sideways between two frames
    sunk = joints - np.array([0.0, 0.2, 0.0], np.float32)  # 20 cm under the floor
    stretched = joints.copy()
    wrist, elbow = 20, 18  # left wrist and its parent
    assert PARENTS[wrist] == elbow
    # the forearm grows by a half over the clip (its length changes, slowly: no joint moves fast)
    grow = np.linspace(1.0, 1.5, T, dtype=np.float32)[:, None]
    stretched[:, wrist] = joints[:, elbow] + (joints[:, wrist] - joints[:, elbow]) * grow
    # a frozen pose dragged over the floor at 1 m/s: every foot in contact slides
    still = np.repeat(joints[:1], T, axis=0)
    still[:, :, 1] -= still[:, :, 1].min()
    skating = still + np.arange(T, dtype=np.float32)[:, None, None] / FPS * np.array([1.0, 0.0, 0.0], np.float32)
    return {"implausible_root_teleport": teleport, "implausible_ground_penetration": sunk,
            "implausible_bone_length_change": stretched, "implausible_joint_speed": _bounce(joints),
            "implausible_foot_skating": skating}  # fmt: skip
