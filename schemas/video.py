"""The ``video`` table: one row per video clip with its sampled frames (JPEG), their frame numbers and
presentation times, and — when it shows a motion of the build — the alignment to that motion."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["VIDEO_SCHEMA"]

VIDEO_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),  # relative to the source root
        pa.field("split", pa.string(), nullable=False),
        pa.field("fps", pa.float32(), nullable=False),  # average frame rate of the file
        pa.field("variable_frame_rate", pa.bool_(), nullable=False),
        pa.field("duration", pa.float32(), nullable=False),  # seconds, whole file
        pa.field("num_frames", pa.int32(), nullable=False),  # whole file
        pa.field("orig_width", pa.int32(), nullable=False),  # as stored, before rotation
        pa.field("orig_height", pa.int32(), nullable=False),
        pa.field("rotation", pa.int32(), nullable=False),  # clockwise degrees applied for display
        pa.field("codec", pa.string(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),  # of the stored frames (upright, resized)
        pa.field("height", pa.int32(), nullable=False),
        pa.field("segment_start", pa.float32(), nullable=False),  # seconds of the file used
        pa.field("segment_end", pa.float32(), nullable=False),
        pa.field("frame_indices", pa.list_(pa.int32()), nullable=False),
        pa.field("frame_timestamps", pa.list_(pa.float32()), nullable=False),  # seconds, presentation time
        pa.field("frames", pa.list_(pa.binary()), nullable=False),  # JPEG
        pa.field("decoder", pa.string(), nullable=False),  # decord | ffmpeg
        pa.field("captions", pa.list_(pa.string()), nullable=False),
        pa.field("motion_id", pa.string()),  # the aligned motion, when there is one
        pa.field("motion_frame_indices", pa.list_(pa.int32())),  # the motion frame of each sampled frame
        pa.field("overlap_seconds", pa.float32()),  # length of the common segment
        pa.field("offset_seconds", pa.float32()),  # motion time at the segment's start
    ]
)
