"""Quaternions (w, x, y, z), vectorized over any leading shape, in float64. The conventions match
HumanML3D's ``common/quaternion.py`` (``qbetween`` = the shortest rotation taking v0 to v1)."""

from __future__ import annotations

import numpy as np

__all__ = ["cross", "matrix_to_axis_angle", "qbetween", "qinv", "qmul", "qrot", "quat_to_cont6d"]


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.cross for (…, 3) arrays, without its axis shuffling (several times faster on large batches)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def qinv(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = np.moveaxis(q, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(r, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)  # fmt: skip


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (…, 3) by quaternions ``q`` (…, 4) (broadcasting)."""
    qv = q[..., 1:]
    uv = cross(qv, v)
    return v + 2.0 * (q[..., :1] * uv + cross(qv, uv))


def qbetween(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """The shortest rotation taking direction ``v0`` to ``v1``. Where they are opposite the reference's
    formula gives 0/0 = NaN; here it gives a half turn about an axis perpendicular to ``v0``."""
    v0, v1 = np.broadcast_arrays(v0, v1)
    w = np.sqrt((v0**2).sum(-1) * (v1**2).sum(-1)) + (v0 * v1).sum(-1)
    q = np.concatenate([w[..., None], cross(v0, v1)], axis=-1)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    degenerate = norm[..., 0] < 1e-9
    if degenerate.any():
        a = v0[degenerate]
        axis = np.cross(a, np.array([1.0, 0.0, 0.0]))
        small = np.linalg.norm(axis, axis=-1) < 1e-6
        axis[small] = np.cross(a[small], np.array([0.0, 1.0, 0.0]))
        q[degenerate] = np.concatenate([np.zeros((len(a), 1)), axis / np.linalg.norm(axis, axis=-1, keepdims=True)], -1)
        norm[degenerate] = 1.0
    return q / norm


def quat_to_cont6d(q: np.ndarray) -> np.ndarray:
    """Continuous 6-D rotation (Zhou et al. 2019) as HumanML3D stores it: the matrix's first column, then
    its second."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    s = 2.0 / (q * q).sum(-1)
    return np.stack([1 - s * (y * y + z * z), s * (x * y + z * w), s * (x * z - y * w),
                     s * (x * y - z * w), 1 - s * (x * x + z * z), s * (y * z + x * w)], axis=-1)  # fmt: skip


def matrix_to_axis_angle(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (…, 3, 3) → axis-angle vectors (…, 3), through a quaternion (Shepperd's method
    picks the numerically safest of four formulas per matrix)."""
    m = np.asarray(m, dtype=np.float64)
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = np.stack([
        np.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + 2 * m[..., 0, 0] - tr, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 + 2 * m[..., 1, 1] - tr, m[..., 1, 2] + m[..., 2, 1]], -1),
        np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 + 2 * m[..., 2, 2] - tr], -1),
    ], axis=-2)  # fmt: skip
    best = np.argmax(np.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1), axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)  # w >= 0: angle in [0, π]
    sin_half = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sin_half, q[..., :1])
    return np.where(sin_half > 1e-12, q[..., 1:] * angle / np.maximum(sin_half, 1e-12), 2 * q[..., 1:])
