"""Motion plausibility physics: per-clip measures over a unit's frames, vectorised (the fastest joint, the
fastest root move over the ground, feet below the floor, foot skating, bone-length change), and the column
helpers the record summaries share (a list column's frames as one array, reductions per clip)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.motion import NUM_JOINTS, PARENTS

__all__ = ["BONES", "FEET", "PLAUSIBILITY_FLAGS", "PLAUSIBILITY_LIMITS", "flat_frames", "one_array", "per_clip",
           "plausibility", "plausibility_batch", "rows_finite"]  # fmt: skip

FEET = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
BONES = [(c, p) for c, p in enumerate(PARENTS) if p >= 0]
assert [c for c, _ in BONES] == list(range(1, NUM_JOINTS))  # every joint but the root ends one bone
_BONE_PARENTS = np.array([p for _, p in BONES])
PLAUSIBILITY_FLAGS = ("joint_speed", "root_teleport", "ground_penetration", "foot_skating", "bone_length_change")
# (measure, its limit in validation.plausibility, flag), most specific first: a clip gets the reason of the
# first limit it breaks (a teleport also moves every joint fast; a stretched bone also moves its end joint fast)
PLAUSIBILITY_LIMITS = (
    ("root_speed", "max_root_speed_m_s", "root_teleport"),
    ("ground_penetration", "max_ground_penetration_m", "ground_penetration"),
    ("bone_length_change", "max_bone_length_change", "bone_length_change"),
    ("joint_speed", "max_joint_speed_m_s", "joint_speed"),
    ("foot_skate_ratio", "max_foot_skate_ratio", "foot_skating"),
)


def one_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The column as one array: its only chunk as is (``combine_chunks`` copies even one chunk)."""
    if not isinstance(col, pa.ChunkedArray):
        return col
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def flat_frames(col: pa.ChunkedArray | pa.Array, inner: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a list<fixed_size_list…> column as one float32 (F, *inner) array, and each row's frame
    count — no Python loop over rows or frames."""
    arr = one_array(col)
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = arr.flatten()
    for _ in inner:
        flat = flat.flatten()
    return flat.to_numpy(zero_copy_only=False).reshape(-1, *inner), lengths


def per_clip(values: np.ndarray, starts: np.ndarray, ufunc, empty: float) -> np.ndarray:
    """``ufunc.reduceat`` over each clip's slice of ``values`` (clips given by start offsets; empty → ``empty``)."""
    out = np.full(len(starts) - 1, empty, dtype=np.float64)
    nonempty = starts[1:] > starts[:-1]
    if nonempty.any() and len(values):
        out[nonempty] = ufunc.reduceat(values, starts[:-1][nonempty])
    return out


def _sq_norm(v: np.ndarray) -> np.ndarray:
    """Squared length of the last axis (of size 3)."""
    return v[..., 0] ** 2 + v[..., 1] ** 2 + v[..., 2] ** 2


_MEASURES = ("joint_speed", "root_speed", "ground_penetration", "foot_skate_ratio", "bone_length_change")
_BLOCK_BYTES = 1 << 20  # passes over a unit's frames go in blocks of ~1 MB: temporaries stay in cache, no fresh pages
_BLOCK_FRAMES = _BLOCK_BYTES // (NUM_JOINTS * 3 * 4)  # frames of float32 joints in a block


def plausibility_batch(joints: np.ndarray, lengths: np.ndarray, fps: np.ndarray, cfg) -> dict[str, np.ndarray]:
    """Per-clip plausibility measures for a batch (joints: all clips' frames, F×22×3 metres, y up, floor
    at 0; ``lengths``: frames per clip): the fastest joint (m/s), the fastest root move over the ground
    (m/s), how far the lowest foot goes below the floor (m), the share of foot-contact frames in which the
    foot slides, and the largest relative change of a bone's length ((max − min) / mean).

    Clips are measured in blocks of about ``_BLOCK_FRAMES`` frames (a longer clip alone): the same
    vectorised pass over ~1 MB instead of a unit's ~9 MB is ~2x faster, since its dozen temporaries
    neither leave the cache nor need new memory pages."""
    lengths = np.asarray(lengths, dtype=np.int64)
    joints = np.asarray(joints, dtype=np.float32)
    fps = np.asarray(fps)
    n = len(lengths)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    # block boundaries (clip indices): a new block starts where the frames since the last one would pass the size
    cuts, first = [0], 0
    for i in range(1, n):
        if starts[i + 1] - starts[first] > _BLOCK_FRAMES:
            cuts.append(i)
            first = i
    cuts.append(n)
    parts = [_plausibility_block(joints[starts[a]:starts[b]], lengths[a:b], fps[a:b], cfg)
             for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]  # fmt: skip
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in _MEASURES}


def _plausibility_block(joints: np.ndarray, lengths: np.ndarray, fps: np.ndarray, cfg) -> dict[str, np.ndarray]:
    n = len(lengths)
    joints = np.asarray(joints, dtype=np.float32)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    # frame-to-frame steps within each clip: step k is frame k+1 − frame k; the last frame of a clip has none
    step = np.zeros_like(joints)
    if len(joints) > 1:
        np.subtract(joints[1:], joints[:-1], out=step[:-1])
    last = starts[1:][lengths > 0] - 1
    step[last] = 0.0
    clip_fps = np.repeat(fps.astype(np.float32), lengths)
    # float32, and squared norms as a sum of the three squared components (3-4x faster than einsum or
    # .sum(-1) over an axis of 3); the square root after the max
    joint_speed = np.sqrt(_sq_norm(step).max(-1)) * clip_fps
    root_speed = np.hypot(step[:, 0, 0], step[:, 0, 2]) * clip_fps
    feet_y = joints[:, FEET, 1]
    low = feet_y < cfg.contact_height_m
    contact = np.zeros_like(low)
    if len(joints) > 1:
        contact[:-1] = low[:-1] & low[1:]
    contact[last] = False
    sliding = contact & (np.hypot(step[:, FEET, 0], step[:, FEET, 2]) * clip_fps[:, None] > cfg.skate_speed_m_s)
    n_contact = per_clip(contact.sum(-1).astype(np.float64), starts, np.add, 0.0)
    n_sliding = per_clip(sliding.sum(-1).astype(np.float64), starts, np.add, 0.0)
    # bone vectors: joints 1..21 (a slice) minus their parents (one take of whole joints, 2.5x faster than
    # gathering single coordinates)
    ends = np.take(joints, _BONE_PARENTS, axis=1)
    np.subtract(joints[:, 1:], ends, out=ends)
    bones = np.sqrt(_sq_norm(ends)).astype(np.float64)  # F × bones
    mean = np.zeros((n, bones.shape[1]))
    nonempty = lengths > 0
    if nonempty.any():
        mean[nonempty] = np.add.reduceat(bones, starts[:-1][nonempty], axis=0) / lengths[nonempty, None]
        spread = np.zeros_like(mean)
        spread[nonempty] = (np.maximum.reduceat(bones, starts[:-1][nonempty], axis=0)
                            - np.minimum.reduceat(bones, starts[:-1][nonempty], axis=0))  # fmt: skip
    else:
        spread = mean
    return {
        "joint_speed": per_clip(joint_speed, starts, np.maximum, 0.0),
        "root_speed": per_clip(root_speed, starts, np.maximum, 0.0),
        "ground_penetration": np.maximum(0.0, -per_clip(feet_y.min(-1), starts, np.minimum, 0.0)),
        "foot_skate_ratio": np.divide(n_sliding, n_contact, out=np.zeros(n), where=n_contact > 0),
        "bone_length_change": (spread / np.maximum(mean, 1e-6)).max(-1) if n else np.zeros(0),
    }


def rows_finite(values: np.ndarray) -> np.ndarray:
    """Per frame (first axis): every value finite — in blocks of ``_BLOCK_BYTES``, like the plausibility pass."""
    flat = values.reshape(len(values), -1)
    out = np.empty(len(flat), dtype=bool)
    rows = max(1, _BLOCK_BYTES // max(1, flat.shape[1] * flat.itemsize))
    for i in range(0, len(flat), rows):
        np.isfinite(flat[i:i + rows]).all(-1, out=out[i:i + rows])
    return out


def plausibility(joints: np.ndarray, fps: float, cfg) -> dict[str, float]:
    """The plausibility measures of one clip (T×22×3); see :func:`plausibility_batch`."""
    m = plausibility_batch(np.asarray(joints, np.float32), np.array([len(joints)]), np.array([fps]), cfg)
    return {k: float(v[0]) for k, v in m.items()}
