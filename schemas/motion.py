"""The ``motion`` table: one row per motion clip in HumanML3D's representation, plus the skeleton it uses.

The 263-d feature layout is named here once (``FEATURE_LAYOUT``) so no other module spells out offsets.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = [
    "FEATURE_DIM",
    "FEATURE_LAYOUT",
    "FPS",
    "JOINT_NAMES",
    "KINEMATIC_CHAIN",
    "MOTION_SCHEMA",
    "NUM_JOINTS",
    "PARENTS",
    "RAW_OFFSETS",
    "TARGET_BONE_LENGTHS",
    "TEXT_TYPE",
    "motion_table",
]

FPS = 20.0  # HumanML3D's frame rate
NUM_JOINTS = 22
FEATURE_DIM = 263

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
# HumanML3D's t2m kinematic chains: right leg, left leg, spine to head, right arm, left arm.
KINEMATIC_CHAIN = ((0, 2, 5, 8, 11), (0, 1, 4, 7, 10), (0, 3, 6, 9, 12, 15), (9, 14, 17, 19, 21), (9, 13, 16, 18, 20))
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
# HumanML3D's t2m_raw_offsets: the rest direction of each joint from its parent (Y up, facing +Z, left = +X).
RAW_OFFSETS = np.array(
    [[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0],
     [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0],
     [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0]],
    dtype=np.float32,
)  # fmt: skip
# Bone lengths (metres) of HumanML3D's uniform target skeleton, joint j to PARENTS[j] for j = 1..21,
# measured on the released new_joints/012314.npy (constant over its frames to 1e-6).
TARGET_BONE_LENGTHS = np.array(
    [0.10307, 0.10988, 0.13157, 0.39362, 0.39019, 0.14319, 0.43243, 0.42564, 0.05736, 0.14338, 0.14942,
     0.21936, 0.13749, 0.14338, 0.10304, 0.13161, 0.12298, 0.25684, 0.26309, 0.26601, 0.26988],
    dtype=np.float32,
)  # fmt: skip

# HumanML3D's 263-d per-frame vector, in order (see the HumanML3D paper, section "Motion representation").
FEATURE_LAYOUT: dict[str, slice] = {
    "root_rot_velocity": slice(0, 1),  # angular velocity about Y (half-angle per frame, as the reference)
    "root_linear_velocity": slice(1, 3),  # XZ velocity in the root frame
    "root_y": slice(3, 4),  # root height
    "ric": slice(4, 67),  # 21 joints × 3, rotation-invariant positions relative to the root
    "rot6d": slice(67, 193),  # 21 joints × 6, continuous 6-D local rotations
    "local_velocity": slice(193, 259),  # 22 joints × 3
    "foot_contact": slice(259, 263),  # left ankle, left foot, right ankle, right foot
}
assert sum(s.stop - s.start for s in FEATURE_LAYOUT.values()) == FEATURE_DIM

TEXT_TYPE = pa.struct(
    [
        pa.field("caption", pa.string(), nullable=False),
        pa.field("tokens", pa.list_(pa.string()), nullable=False),
        pa.field("start", pa.float32(), nullable=False),  # seconds in the source clip; 0/0 = whole clip
        pa.field("end", pa.float32(), nullable=False),
    ]
)

MOTION_SCHEMA = pa.schema(
    [
        pa.field("motion_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # source kind: humanml3d | amass | motionx
        pa.field("source_path", pa.string(), nullable=False),  # relative to the source root
        pa.field("parent_id", pa.string()),  # the full clip a sub-clip was cut from; null for full clips
        pa.field("mirror_of", pa.string()),  # the un-mirrored id for HumanML3D's M-prefixed clips
        pa.field("start_frame", pa.int32(), nullable=False),  # within the source clip
        pa.field("end_frame", pa.int32(), nullable=False),  # exclusive
        pa.field("split", pa.string(), nullable=False),
        pa.field("fps", pa.float32(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("features", pa.list_(pa.list_(pa.float32(), FEATURE_DIM)), nullable=False),
        pa.field("joints", pa.list_(pa.list_(pa.list_(pa.float32(), 3), NUM_JOINTS)), nullable=False),
        pa.field("texts", pa.list_(TEXT_TYPE), nullable=False),
        # plausibility checks the clip failed but was kept for (validation.plausibility.action=flag):
        # foot_skating, ground_penetration, joint_speed, root_teleport, bone_length_change; empty = clean
        pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
    ]
)


def _nested(arrays: list[np.ndarray], inner_shape: tuple[int, ...]) -> pa.Array:
    """A list<fixed_size_list…> array from per-row float32 arrays of shape (T, *inner_shape), without a
    Python loop over frames: one flat buffer, fixed-size wrappers, then list offsets."""
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    flat = np.concatenate([np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in arrays]) if arrays else (
        np.zeros(0, np.float32)
    )
    values: pa.Array = pa.array(flat, type=pa.float32())
    for size in reversed(inner_shape):
        values = pa.FixedSizeListArray.from_arrays(values, size)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def motion_table(rows: list[dict]) -> pa.Table:
    """Build a ``motion`` table from row dicts whose ``features``/``joints`` are numpy arrays."""
    columns = {}
    for field in MOTION_SCHEMA:
        if field.name == "features":
            columns[field.name] = _nested([r["features"] for r in rows], (FEATURE_DIM,))
        elif field.name == "joints":
            columns[field.name] = _nested([r["joints"] for r in rows], (NUM_JOINTS, 3))
        elif field.name == "quality_flags":  # set by validation, after ingest
            columns[field.name] = pa.array([r.get(field.name, []) for r in rows], type=field.type)
        else:
            columns[field.name] = pa.array([r[field.name] for r in rows], type=field.type)
    return pa.Table.from_arrays(list(columns.values()), schema=MOTION_SCHEMA)
