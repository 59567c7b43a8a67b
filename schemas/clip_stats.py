"""The ``clip_stats`` table: a few numbers per motion clip (one row per ``motion`` row the unit kept), for a
quick look at a build's motions without reading their joints: how long, how far the root travels on the
ground and how fast."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["CLIP_STATS_SCHEMA"]

CLIP_STATS_SCHEMA = pa.schema(
    [
        pa.field("motion_id", pa.string(), nullable=False),  # the motion row's id
        pa.field("split", pa.string(), nullable=False),
        pa.field("duration_s", pa.float32(), nullable=False),  # num_frames / fps
        pa.field("path_length_m", pa.float32(), nullable=False),  # root (pelvis) path on the ground plane (XZ)
        pa.field("mean_speed_mps", pa.float32(), nullable=False),  # path_length_m / duration_s
    ]
)
