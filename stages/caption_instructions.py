"""Caption conversations: one ``instruction`` row per caption of each motion row — a varied human prompt
from a small template set, the caption as the answer, modality ``motion``, the clip's split.
The LLM annotator adds QA on top of these later.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pyarrow as pa

from schemas.instruction import INSTRUCTION_SCHEMA, MOTION_PLACEHOLDER, VIDEO_PLACEHOLDER
from stages import StageResult

__all__ = ["CAPTION_PROMPTS", "PROMPT_VERSION", "caption_instructions", "video_caption_instructions"]

STAGE = "caption_instructions"
PROMPT_VERSION = "caption-templates/v1"
VIDEO_PROMPTS = (
    "Describe what the person does in this video.",
    "What action is shown in the video?",
    "Give a short description of the person's movement in the video.",
    "Caption this video.",
    "What is the person in the video doing?",
    "Summarize the motion shown in this clip.",
)
CAPTION_PROMPTS = (
    "Describe this motion.",
    "What is the person doing in this motion?",
    "Give a short description of the movement.",
    "Explain what happens in this motion sequence.",
    "Summarize the action performed in the motion.",
    "Caption this motion clip.",
    "What movement does the person make?",
    "Describe the body movement you observe.",
    "Tell me what action this motion shows.",
    "In one sentence, what does the person do?",
)


def _pick(seed: int, sample_id: str, n: int = len(CAPTION_PROMPTS)) -> int:
    """A template index that depends only on the seed and the sample, never on batch order."""
    digest = hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % n


def caption_instructions(batch: pa.Table, cfg=None, *, seed: int = 0) -> StageResult:
    """``batch``: motion rows (only ``motion_id``, ``split`` and ``texts`` are read)."""
    annotator = {"backend": "template", "model": None, "prompt_version": PROMPT_VERSION,
                 "params": json.dumps({"seed": seed}, sort_keys=True)}  # fmt: skip
    rows = []
    counts: Counter = Counter()
    for rec in batch.select(["motion_id", "split", "texts"]).to_pylist():
        for i, text in enumerate(rec["texts"]):
            counts["captions_in"] += 1
            sample_id = f"{rec['motion_id']}/caption/{i}"
            prompt = CAPTION_PROMPTS[_pick(seed, sample_id)]
            rows.append({
                "sample_id": sample_id, "modality": "motion", "motion_id": rec["motion_id"], "video_id": None,
                "task": "caption", "category": "caption",
                "conversations": [{"role": "user", "content": f"{MOTION_PLACEHOLDER}\n{prompt}"},
                                  {"role": "assistant", "content": text["caption"]}],
                "annotator": annotator, "split": rec["split"],
            })  # fmt: skip
    counts["instructions_out"] = len(rows)
    return StageResult(tables={"instruction": pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA)}, counters=counts)


def video_caption_instructions(batch: pa.Table, cfg=None, *, seed: int = 0) -> StageResult:
    """``batch``: video rows (``video_id``, ``motion_id``, ``split``, ``captions``). One ``video``
    conversation per caption, and for a video aligned to a motion also a ``motion+video`` one."""
    annotator = {"backend": "template", "model": None, "prompt_version": PROMPT_VERSION,
                 "params": json.dumps({"seed": seed}, sort_keys=True)}  # fmt: skip
    rows = []
    counts: Counter = Counter()
    for rec in batch.select(["video_id", "motion_id", "split", "captions"]).to_pylist():
        for i, caption in enumerate(rec["captions"]):
            counts["captions_in"] += 1
            variants = [("video", None, VIDEO_PLACEHOLDER)]
            if rec["motion_id"]:
                variants.append(("motion+video", rec["motion_id"], f"{MOTION_PLACEHOLDER}\n{VIDEO_PLACEHOLDER}"))
            for modality, motion_id, placeholders in variants:
                sample_id = f"{rec['video_id']}/{modality}/caption/{i}"
                prompt = VIDEO_PROMPTS[_pick(seed, sample_id, len(VIDEO_PROMPTS))]
                rows.append({
                    "sample_id": sample_id, "modality": modality, "motion_id": motion_id, "video_id": rec["video_id"],
                    "task": "caption", "category": "caption",
                    "conversations": [{"role": "user", "content": f"{placeholders}\n{prompt}"},
                                      {"role": "assistant", "content": caption}],
                    "annotator": annotator, "split": rec["split"],
                })  # fmt: skip
    counts["instructions_out"] = len(rows)
    return StageResult(tables={"instruction": pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA)}, counters=counts)
