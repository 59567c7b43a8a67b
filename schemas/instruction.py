"""The ``instruction`` table: one conversation sample (caption or QA) about a motion and/or video clip."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["ANNOTATOR_TYPE", "INSTRUCTION_SCHEMA", "MODALITIES", "TASKS", "TURN_TYPE"]

MODALITIES = ("motion", "video", "motion+video")
TASKS = ("caption", "qa")

TURN_TYPE = pa.struct([pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string(), nullable=False)])
ANNOTATOR_TYPE = pa.struct(
    [
        pa.field("backend", pa.string(), nullable=False),  # template | offline | openai
        pa.field("model", pa.string()),
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("params", pa.string(), nullable=False),  # canonical JSON of the generation parameters
    ]
)

INSTRUCTION_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),
        pa.field("motion_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("task", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("conversations", pa.list_(TURN_TYPE), nullable=False),
        pa.field("annotator", ANNOTATOR_TYPE, nullable=False),
        pa.field("split", pa.string(), nullable=False),
    ]
)
