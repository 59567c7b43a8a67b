"""The ``instruction`` table: one conversation sample (caption or QA) about a motion and/or video clip.

``facts`` (nullable string) is the canonical JSON (sorted keys, no spaces after separators) of the
structured facts that a single-turn QA answer states: written by the offline annotator, from the measured
kinematics (motion QA, ``stages.motion_facts``) or from the human captions (video QA); null for captions
and for LLM-written QA. It lets a judge compare a prediction with the reference's own facts instead of
facts parsed back from the reference's text. Values are the keys of ``schemas.vocabulary``'s tables; a
key is present only when the answer states that fact:

- ``yes_no``: ``"yes"`` | ``"no"`` — the answer to a yes/no or true/false question; the other keys then
  describe the proposition asked about ("Does the person jump?" → ``{"event": "jump", "yes_no": "no"}``).
- ``option``: ``"A"``..``"E"`` — the letter of the right option of a multiple-choice question (the answer
  names the letter and the option: "C) to the left.").
- ``direction``: a ``DIRECTIONS`` key — direction of travel over the ground.
- ``turn``: a ``TURNS`` key (``"none"``: the person keeps facing the same way).
- ``side``: ``"left"`` | ``"right"`` — the side named (also the side of a sided body part or event).
- ``body_part``: a ``BODY_PARTS`` key.
- ``event``: an ``EVENTS`` key (for a counting question, the event counted).
- ``count``: int ≥ 0 — how many times ``event`` happens.
- ``pace``: a ``PACES`` key.
- ``order``: list of ``EVENTS`` keys (or ``BODY_PARTS`` keys, for how the moving part changes over the
  clip), in time order; the answer mentions them in this order.
- ``times``: list of ``[from_s, to_s]`` (seconds) — the spans of the items of ``order``, or of the event or
  body-part window a question is about. Not said in the answer: judge with a tolerance, or not at all.
- numbers the answer text states, to be judged with a tolerance: ``distance_m`` (metres travelled),
  ``turn_deg`` (degrees turned, ≥ 0), ``speed_mps`` (mean ground speed), ``duration_s``.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["ANNOTATOR_TYPE", "EXPORT_FORMATS", "INSTRUCTION_SCHEMA", "MODALITIES", "MOTION_PLACEHOLDER", "PLACEHOLDERS",
           "TASKS", "TURN_TYPE", "VIDEO_PLACEHOLDER"]

# Where a user turn shows its motion / video: the trainer replaces each with the encoder's tokens, the bench
# removes them from its questions. One spelling for the writer (stages), the checks and the reader (model).
MOTION_PLACEHOLDER = "<motion>"
VIDEO_PLACEHOLDER = "<video>"
PLACEHOLDERS = (MOTION_PLACEHOLDER, VIDEO_PLACEHOLDER)

# the forms `movid export` writes the table in (OUT/export/<format>/<split>.json by default)
EXPORT_FORMATS = ("llava", "alpaca")

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
        pa.field("facts", pa.string()),  # JSON of the answer's structured facts (module docstring), or null
    ]
)
