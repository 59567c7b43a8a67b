"""The arithmetic of ``stages.kinematics.joints_to_features``: HumanML3D's ``process_file`` on a block of
frames from many clips, in the reference's own precision.

The reference is float32 where it calls its torch quaternion code and float64 where numpy promotes
(the uniform skeleton is accumulated in float64, the facing direction is smoothed in float64). Its
float32 roundings matter: far from the origin a float32 position carries noise of ~1e-6 m, which
short bones turn into rot6d differences of 1e-4, and ``qbetween`` of nearly opposite vectors amplifies
noise further (a raw hip offset points +X, so any clip facing -Z hits it). So each step here rounds
where the reference rounds, in the same order of operations, and the result matches the reference per
value (tests/stages/test_kinematics_reference.py).

Arrays are laid out (component, joint, frame): the joints of a frame are rows, so a parent lookup is a
row gather, a frame step is a shifted view, and quaternions are tuples of (joint, frame) arrays.
Feature row i holds the pair of frames (i, i + 1); the row of each clip's last frame is computed on the
pair that crosses into the next clip and is dropped by the caller.
"""

from __future__ import annotations

import functools

import numpy as np

from schemas.motion import FEATURE_DIM, FEATURE_LAYOUT, NUM_JOINTS, PARENTS, RAW_OFFSETS

__all__ = ["featurize_block"]

_F = np.float32
_PAR = np.array(PARENTS[1:])
_RAW = tuple(RAW_OFFSETS[1:, k].astype(_F)[:, None] for k in range(3))  # raw directions, (21, 1) each
_RAW_AXIS = np.abs(RAW_OFFSETS[1:]).argmax(axis=1) * (NUM_JOINTS - 1) + np.arange(NUM_JOINTS - 1)  # in (63, n)
_RAW_SIGN = RAW_OFFSETS[1:].sum(axis=1).astype(_F)[:, None]  # each raw direction is ±1 along one axis
FACE_JOINTS = (2, 1, 17, 16)  # right hip, left hip, right shoulder, left shoulder (the reference's order)
LEG_JOINTS = (5, 8)  # right knee, right ankle: the leg length that sets the retargeting scale
FEET = (7, 10, 8, 11)  # left ankle, left toe, right ankle, right toe: the contact columns, in order
SMOOTH_SIGMA, SMOOTH_RADIUS = 20.0, 80  # gaussian_filter1d(σ=20) of the facing direction, truncate 4σ
# The rotation accumulated before joint j's own is the root's for bones leaving the root and for the
# collars (the reference restarts each arm chain from the root rotation), else the parent bone's.
_FROM_ROOT = np.array([p == 0 or j in (13, 14) for j, p in enumerate(PARENTS) if j > 0])
_PREV = np.where(_FROM_ROOT, NUM_JOINTS - 1, _PAR - 1)  # each bone's predecessor: a bone, or the root (last)
_KERNEL = np.exp(-0.5 / SMOOTH_SIGMA**2 * np.arange(-SMOOTH_RADIUS, SMOOTH_RADIUS + 1) ** 2)
_KERNEL /= _KERNEL.sum()  # scipy's _gaussian_kernel1d, term for term


_ONE_BITS = np.float32(1).view(np.int32)


def _sqrt_near_one(s: np.ndarray) -> np.ndarray:
    """float32 sqrt of squared norms of unit vectors as the reference computes it: its torch (2.13, MKL)
    rounds sqrt(s) for s within a few ulps of 1 to the float32 nearest (1 + s) / 2, ties toward 1 (numpy
    rounds ties correctly). It matters in ``qbetween`` of nearly opposite vectors, where ``w = sqrt(s) +
    dot`` cancels to ~1e-5 and one ulp of the sqrt moves the rotation by 1e-3."""
    d = s.view(np.int32) - _ONE_BITS  # ulps from 1 (2^-24 below 1, 2^-23 above)
    torch_like = (((d + (d < 0)) >> 1) + _ONE_BITS).view(_F)
    near = np.abs(d) <= 64
    return torch_like if near.all() else np.where(near, torch_like, np.sqrt(s))


def _cross(a, b):
    return a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]


def _qbetween_raw(d):
    """The reference's ``qbetween`` (float32) from each joint's raw direction to directions ``d``."""
    c = _cross(_RAW, d)
    w = _sqrt_near_one(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])  # |raw|² = 1 exactly
    w += d.reshape(-1, d.shape[-1])[_RAW_AXIS] * _RAW_SIGN  # raw · d: one term, the others exact zeros
    norm = np.sqrt(w * w + c[0] * c[0] + c[1] * c[1] + c[2] * c[2])
    bad = norm == 0  # exactly opposite: the reference gives 0/0; a half turn about a perpendicular axis
    if bad.any():
        w[bad], norm[bad] = 0.0, 1.0
        for k in range(3):  # raw ±X turns about Y, ±Y about Z, ±Z about X
            c[k][bad] = np.broadcast_to(np.abs(_RAW[(k + 2) % 3]), bad.shape)[bad]
    return w / norm, c[0] / norm, c[1] / norm, c[2] / norm


def _qrot(q, v):
    """Rotate vectors ``v`` (3 arrays) by quaternions ``q`` (4 arrays): the reference's ``qrot``."""
    qv = q[1:]
    uv = _cross(qv, v)
    uuv = _cross(qv, uv)
    return tuple(v[k] + 2 * (q[0] * uv[k] + uuv[k]) for k in range(3))


# q * r as the reference's torch qmul takes it: the outer product t[a, b] = r[a] q[b], then for each
# component four signed terms summed left to right (flat index a * 4 + b).
_QMUL_TERMS = np.array([[0, 5, 10, 15], [1, 4, 11, 14], [2, 7, 8, 13], [3, 6, 9, 12]])
_QMUL_SIGNS = np.array([[1, -1, -1, -1], [1, 1, -1, 1], [1, 1, 1, -1], [1, -1, 1, 1]], _F)
_CONJ = np.array([1, -1, -1, -1], _F)


def _qmul(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """q * r for stacked quaternions (4, …), rounding as the reference's float32 qmul does. Small arrays go
    through the whole outer product in a few numpy calls; large ones term by term, with less memory."""
    if r[0].size > 4096:
        return np.stack([r[0] * q[0] - r[1] * q[1] - r[2] * q[2] - r[3] * q[3],
                         r[0] * q[1] + r[1] * q[0] - r[2] * q[3] + r[3] * q[2],
                         r[0] * q[2] + r[1] * q[3] + r[2] * q[0] - r[3] * q[1],
                         r[0] * q[3] - r[1] * q[2] + r[2] * q[1] + r[3] * q[0]])  # fmt: skip
    outer = r[:, None] * q[None, :]
    t = outer.reshape((16,) + outer.shape[2:])[_QMUL_TERMS]
    t *= _QMUL_SIGNS.reshape((4, 4) + (1,) * (t.ndim - 2))
    return t[:, 0] + t[:, 1] + t[:, 2] + t[:, 3]


def _chain_levels() -> tuple[np.ndarray, list[tuple[slice, slice | None]]]:
    """The bones by depth along the reference's kinematic chains: the bone order that puts each level in a
    block, and per level its block and where its bones' predecessors sit in the block before (None: the
    root). The arm chains start from the root rotation, as the reference's do. Each level's predecessors
    are a run of the level before, so both are slices."""
    depth, levels = {0: 0}, {}
    for j in range(1, NUM_JOINTS):
        prev = 0 if _FROM_ROOT[j - 1] else PARENTS[j]
        depth[j] = depth[prev] + 1
        levels.setdefault(depth[j], []).append((j - 1, prev - 1))
    order, blocks, before = [], [], []
    for _, level in sorted(levels.items()):
        at = [before.index(p) + len(order) - len(before) for _, p in level] if level[0][1] >= 0 else None
        assert at is None or at == list(range(at[0], at[0] + len(at))), "predecessors not a run"
        blocks.append((slice(len(order), len(order) + len(level)), None if at is None else slice(at[0], at[-1] + 1)))
        before = [b for b, _ in level]
        order += before
    return np.array(order), blocks


_CHAIN_ORDER, _CHAIN_BLOCKS = _chain_levels()
_CHAIN_UNORDER = np.argsort(_CHAIN_ORDER)


def _chain_rotations(q: np.ndarray, w: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The rotation the reference's FK applies to each bone: (4, 21, n) from bone rotations ``q`` (4, 21, n)
    and the root's (w, 0, y, 0). Its IK stores R_loc = qinv(R) * rot down each chain and its FK multiplies
    them back, R * R_loc, which is rot only up to float32 rounding and a norm that drifts (qinv does not
    divide by |R|²); far down a chain that moves bones by 1e-6 m, so the products are taken as it takes them."""
    q = q[:, _CHAIN_ORDER]
    chained = np.empty_like(q)
    r = np.zeros((4, 1, len(w)), _F)
    r[0, 0], r[2, 0] = w, y
    for block, prev in _CHAIN_BLOCKS:
        r = r if prev is None else chained[:, prev]
        chained[:, block] = _qmul(r, _qmul(r * _CONJ[:, None, None], q[:, block]))
    return chained[:, _CHAIN_UNORDER]


def _yaw_to_z(fx: np.ndarray, fz: np.ndarray):
    """``qbetween(forward, +Z)`` for horizontal float32 directions: (w, y), the quaternion (w, 0, y, 0)."""
    w = _sqrt_near_one(fx * fx + fz * fz) + fz
    norm = np.sqrt(w * w + fx * fx)
    bad = norm == 0  # facing exactly -Z: a half turn about Y
    if bad.any():
        w[bad], norm[bad] = 0.0, 1.0
        fx = np.where(bad, -1.0, fx).astype(_F)
    return w / norm, -fx / norm


def _yrot(w, y, vx, vz):
    """``qrot`` by (w, 0, y, 0) of the X and Z components: the general formula with its zero terms left out
    (they add exact zeros, so the float32 result is the same)."""
    a, b = y * vz, y * vx
    return vx + 2 * (w * a - y * b), vz - 2 * (w * b + y * a)


def _smooth_index(lengths: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For clips of ``lengths`` end to end: the frames to gather for their edge-padded copies, and the
    'valid' convolution outputs that are each frame's (see ``_smooth``)."""
    lengths_ = np.array(lengths)
    starts = np.cumsum(lengths_) - lengths_
    padded_len = lengths_ + 2 * SMOOTH_RADIUS
    first = np.cumsum(padded_len) - padded_len
    offset = np.arange(padded_len.sum()) - np.repeat(first + SMOOTH_RADIUS, padded_len)
    src = np.clip(offset, 0, np.repeat(lengths_ - 1, padded_len)) + np.repeat(starts, padded_len)
    return src, np.repeat(first - starts, lengths_) + np.arange(lengths_.sum())


_smooth_index_of_one = functools.lru_cache(maxsize=1024)(_smooth_index)  # clip by clip: by its length


def _smooth(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """gaussian_filter1d(x, σ=20, mode='nearest') of each clip's stretch of each row of ``x`` (k, n) float64,
    in one convolution: each clip padded with copies of its edge frames, the rows end to end, then the
    'valid' outputs that lie within one padded clip."""
    src, keep = (_smooth_index_of_one if len(lengths) == 1 else _smooth_index)(tuple(lengths.tolist()))
    out = np.convolve(x[:, src].ravel(), _KERNEL, mode="valid")  # output m covers padded m .. m + 2r
    return out[np.arange(len(x))[:, None] * len(src) + keep]


def _uniform_skeleton(j: np.ndarray, clip_of, starts, lengths, tgt: np.ndarray) -> np.ndarray:
    """The reference's ``uniform_skeleton`` (IK, then FK on the target offsets): (3, 22, n) float64."""
    b = j[:, 1:] - j[:, _PAR]
    length = np.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    q = _qbetween_raw(b / length)
    offsets = tuple(tgt[1:, k][:, None] for k in range(3))
    w, y = _root_rotation(j, starts, lengths, smooth=False)
    bone = np.stack(_qrot(tuple(_chain_rotations(np.stack(q), w, y)), offsets))
    src_leg = length[LEG_JOINTS[0] - 1, starts] + length[LEG_JOINTS[1] - 1, starts]
    tgt_leg = np.abs(tgt[LEG_JOINTS[0]]).max() + np.abs(tgt[LEG_JOINTS[1]]).max()
    p = np.empty(j.shape, np.float64)
    p[:, 0] = j[:, 0] * (tgt_leg / src_leg)[clip_of]
    for k in range(1, NUM_JOINTS):
        np.add(p[:, PARENTS[k]], bone[:, k - 1], out=p[:, k])
    return p


def _place(p: np.ndarray, clip_of, starts) -> np.ndarray:
    """Floor at y = 0, first root at the XZ origin, first frame facing +Z: float64 in, (3, 22, n) float32 out."""
    p[1] -= np.minimum.reduceat(p[1].min(axis=0), starts)[clip_of]
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS
    a = p[:, r_hip, starts] - p[:, l_hip, starts] + (p[:, r_sdr, starts] - p[:, l_sdr, starts])
    a /= np.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    fx, fz = a[2], -a[0]  # cross(up, across)
    norm = np.sqrt(fx * fx + fz * fz)
    w, y = _yaw_to_z((fx / norm).astype(_F), (fz / norm).astype(_F))
    p[0] -= p[0, 0, starts][clip_of]
    p[2] -= p[2, 0, starts][clip_of]
    g = p.astype(_F)
    g[0], g[2] = _yrot(w[clip_of], y[clip_of], g[0], g[2])
    return g


def _root_rotation(g: np.ndarray, starts, lengths, smooth: bool = True):
    """Per-frame root rotation (w, y) from the facing direction (smoothed by the featurization's IK, not by
    the uniform skeleton's), identity on each first frame."""
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS  # the reference's IK unpacks these as (l_hip, r_hip, …)
    a = g[:, l_hip] - g[:, r_hip] + (g[:, r_sdr] - g[:, l_sdr])
    a /= np.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    fx, fz = a[2].astype(np.float64), -a[0].astype(np.float64)  # cross(up, across), in float64
    if smooth:
        fx, fz = _smooth(np.stack([fx, fz]), lengths)
    norm = np.sqrt(fx * fx + fz * fz)
    w, y = _yaw_to_z((fx / norm).astype(_F), (fz / norm).astype(_F))
    w[starts], y[starts] = 1.0, 0.0
    return w, y


def _rot6d(g: np.ndarray, w: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """Local joint rotations (IK against the raw offsets) as continuous 6-D, written to ``out`` (n, 21, 6)."""
    v = g[:, 1:] - g[:, _PAR]
    ext = np.empty((4, NUM_JOINTS, g.shape[-1]), _F)  # the bone rotations, then the root's
    ext[:, :-1] = _qbetween_raw(v / np.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]))
    ext[0, -1], ext[1, -1], ext[2, -1], ext[3, -1] = w, 0.0, y, 0.0
    r, i, j, k = _qmul(ext[:, _PREV] * _CONJ[:, None, None], ext[:, :-1])  # qmul(qinv(prev), rot)
    s = 2.0 / (r * r + i * i + j * j + k * k)
    for c, value in enumerate((1 - s * (j * j + k * k), s * (i * j + k * r), s * (i * k - j * r),
                               s * (i * j - k * r), 1 - s * (i * i + k * k), s * (j * k + i * r))):  # fmt: skip
        out[:, :, c] = value.T


def featurize_block(joints: np.ndarray, starts: np.ndarray, lengths: np.ndarray, tgt: np.ndarray,
                    feet_threshold: float) -> np.ndarray:  # fmt: skip
    """(n, 22, 3) float32 frames of clips (``starts``, ``lengths``) → (n, 263) float32 rows; the row of each
    clip's last frame is not a feature row. ``tgt``: (22, 3) float32 target offsets."""
    n = len(joints)
    # per-clip values → per frame: a gather, or for one clip its value broadcast
    clip_of = np.repeat(np.arange(len(starts)), lengths) if len(starts) > 1 else 0
    g = _place(_uniform_skeleton(np.ascontiguousarray(joints.transpose(2, 1, 0)), clip_of, starts, lengths, tgt), clip_of, starts)
    w, y = _root_rotation(g, starts, lengths)
    out = np.zeros((n, FEATURE_DIM), _F)
    col = {name: s.start for name, s in FEATURE_LAYOUT.items()}
    # root: rotation velocity, linear velocity (rotated by the next frame's root rotation), height
    w0, y0, w1, y1 = w[:-1], y[:-1], w[1:], y[1:]
    out[:-1, col["root_rot_velocity"]] = np.arcsin(w0 * y1 - y0 * w1)
    root_step = g[:, 0, 1:] - g[:, 0, :-1]
    out[:-1, col["root_linear_velocity"]], out[:-1, col["root_linear_velocity"] + 1] = _yrot(w1, y1, root_step[0], root_step[2])
    out[:, col["root_y"]] = g[1, 0]
    # positions relative to the root, facing +Z (the reference's get_rifke)
    ric = out[:, FEATURE_LAYOUT["ric"]].reshape(n, NUM_JOINTS - 1, 3)
    ric[:, :, 0], ric[:, :, 2] = (c.T for c in _yrot(w, y, g[0, 1:] - g[0, 0], g[2, 1:] - g[2, 0]))
    ric[:, :, 1] = g[1, 1:].T
    _rot6d(g, w, y, out[:, FEATURE_LAYOUT["rot6d"]].reshape(n, NUM_JOINTS - 1, 6))
    # joint velocities in the current frame's root orientation, and foot contacts (compared in float64)
    step = g[:, :, 1:] - g[:, :, :-1]
    vel = out[:-1, FEATURE_LAYOUT["local_velocity"]].reshape(n - 1, NUM_JOINTS, 3)
    vel[:, :, 0], vel[:, :, 2] = (c.T for c in _yrot(w0, y0, step[0], step[2]))
    vel[:, :, 1] = step[1].T
    feet = step[:, list(FEET)]
    speed2 = feet[0] * feet[0] + feet[1] * feet[1] + feet[2] * feet[2]
    out[:-1, FEATURE_LAYOUT["foot_contact"]] = (speed2 < np.float64(feet_threshold)).T
    return out
