"""The ``bench`` table: one row per question-answer turn pair of the test split's QA conversations,
chosen by category quotas (MoVid-Bench style); written by ``model/bench.py`` at commit.

``category``: MoVid-Bench's five (body_part, sequentiality, direction, reasoning, hallucination) and
``counting``, which is not a MoVid-Bench category: a score reports it apart from the five (see
``model.bench.MOVID_BENCH_CATEGORIES``). ``facts`` carries the instruction row's ``facts`` for single-turn
QA (its keys are documented in ``schemas/instruction.py``)."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["BENCH_SCHEMA"]

BENCH_SCHEMA = pa.schema(
    [
        pa.field("question_id", pa.string(), nullable=False),  # "<sample_id>#<k>": k-th QA pair of the sample
        pa.field("sample_id", pa.string(), nullable=False),  # the instruction row it comes from
        pa.field("question", pa.string(), nullable=False),  # <motion>/<video> placeholders removed
        pa.field("answer", pa.string(), nullable=False),  # the reference answer
        pa.field("category", pa.string(), nullable=False),
        pa.field("modality", pa.string(), nullable=False),  # motion | video
        pa.field("motion_id", pa.string()),
        pa.field("video_id", pa.string()),
        pa.field("split", pa.string(), nullable=False),  # always "test"
        # the reference's structured facts (JSON, keys in schemas/instruction.py), null when not known
        pa.field("facts", pa.string()),
    ]
)
