"""The ``bench`` table: one row per question-answer turn pair of the test split's QA conversations,
chosen by category quotas (MoVid-Bench style); written by ``pipeline/bench.py`` at commit. :func:`qa_pairs`
maps an instruction row to its bench rows (the derivation and the majority baseline both use it).

``category``: MoVid-Bench's five (body_part, sequentiality, direction, reasoning, hallucination) and
``counting``, which is not a MoVid-Bench category: a score reports it apart from the five (see
``MOVID_BENCH_CATEGORIES``). ``facts`` carries the instruction row's ``facts`` for single-turn
QA (its keys are documented in ``schemas/instruction.py``)."""

from __future__ import annotations

import re

import pyarrow as pa

__all__ = ["BENCH_MODALITIES", "BENCH_SCHEMA", "EXTRA_CATEGORIES", "MOVID_BENCH_CATEGORIES", "qa_pairs"]

BENCH_MODALITIES = ("motion", "video")
# MoVid-Bench's categories (the paper's overall figure is over these), and ours reported apart from them.
MOVID_BENCH_CATEGORIES = ("body_part", "sequentiality", "direction", "reasoning", "hallucination")
EXTRA_CATEGORIES = ("counting",)
_PLACEHOLDER = re.compile(r"<(motion|video)>\s*")

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


def _clean(text: str) -> str:
    return _PLACEHOLDER.sub("", text).strip()


def qa_pairs(row: dict) -> list[dict]:
    """Bench rows of one instruction row (a dict of the instruction schema): its k-th user/assistant pair.
    A single-turn row's ``facts`` (the reference's structured facts) go with its pair."""
    turns = row["conversations"]
    facts = row.get("facts") if len(turns) == 2 else None
    out = []
    for k in range(len(turns) // 2):
        q, a = turns[2 * k], turns[2 * k + 1]
        if q["role"] != "user" or a["role"] != "assistant":
            continue
        out.append({"question_id": f"{row['sample_id']}#{k}", "sample_id": row["sample_id"],
                    "question": _clean(q["content"]), "answer": a["content"].strip(), "category": row["category"],
                    "modality": row["modality"], "motion_id": row.get("motion_id"), "video_id": row.get("video_id"),
                    "split": row["split"], "facts": facts})  # fmt: skip
    return out
