"""LLM annotation of motion clips into MoVid-style QA, grounded in kinematic facts.

A clip's prompt carries its human captions (with their time spans) and the facts of
``stages.motion_facts``; the answer is JSON under ``QA_SCHEMA`` (sent as structured output, and checked
here anyway). Pairs that state a direction, a most-active body part or a count are checked against the
facts; contradicted ones go to quarantine. Backends: ``offline`` (deterministic, from the facts and
captions, no network; its language and balance live in ``stages.offline_qa``, and its pairs carry their
structured ``facts`` into the instruction table) and ``openai`` (any OpenAI-compatible endpoint;
``stages.llm_client``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.instruction import INSTRUCTION_SCHEMA, MOTION_PLACEHOLDER, VIDEO_PLACEHOLDER
from schemas.motion import NUM_JOINTS
from schemas.quarantine import Reject
from stages import StageResult
from stages.motion_facts import BODY_PARTS, facts_text, motion_facts
from stages.offline_qa import caption_from_facts, motion_qa, video_qa

__all__ = ["CATEGORIES", "QA_SCHEMA", "TASKS", "AnnotationTask", "ClipRequest", "annotate_captions",
           "annotate_motions", "annotate_video_qa", "annotate_videos", "build_requests", "build_video_qa_requests",
           "build_video_requests", "caption_schema", "load_prompt", "offline_answer", "offline_caption",
           "offline_video_answer", "qa_schema", "recaptions_of", "verify_qa", "video_schema"]  # fmt: skip

STAGE = "annotate"
CATEGORIES = ("body_part", "sequentiality", "direction", "reasoning", "hallucination", "counting")
DIRECTIONS = ("forward", "backward", "left", "right", "in place")


def qa_schema(max_items: int | None = None) -> dict:
    """The answer's JSON Schema. Nullable fields use ``anyOf`` (not a type list): llama.cpp's grammar
    converter enforces that form (checked with Gemma 3 270M), and OpenAI structured outputs accept it."""

    def nullable(schema: dict) -> dict:
        return {"anyOf": [schema, {"type": "null"}]}

    items = {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "question": {"type": "string", "minLength": 3},
            "answer": {"type": "string", "minLength": 1},
            "direction": nullable({"type": "string", "enum": list(DIRECTIONS)}),
            "body_part": nullable({"type": "string", "enum": list(BODY_PARTS)}),
            "count": nullable({"type": "integer", "minimum": 0}),
        },
        "required": ["category", "question", "answer", "direction", "body_part", "count"],
        "additionalProperties": False,
    }
    qa = {"type": "array", "minItems": 1, "items": items} | ({"maxItems": max_items} if max_items else {})
    return {"type": "object", "properties": {"qa": qa}, "required": ["qa"], "additionalProperties": False}


QA_SCHEMA = qa_schema()


def caption_schema(max_items: int | None = None) -> dict:
    """A detailed motion caption (``max_items`` unused: one caption)."""
    return {"type": "object", "properties": {"caption": {"type": "string", "minLength": 10, "maxLength": 800}},
            "required": ["caption"], "additionalProperties": False}  # fmt: skip


def video_schema(max_items: int | None = None) -> dict:
    """A re-caption (under ~50 words) and QA for a video."""
    schema = qa_schema(max_items)
    schema["properties"] = {"caption": {"type": "string", "minLength": 3, "maxLength": 400}} | schema["properties"]
    schema["required"] = ["caption", "qa"]
    return schema


@dataclass(frozen=True)
class AnnotationTask:
    """One annotation task (``annotator.tasks``): the table it reads, the stage its counters go under
    (``<item>_in = <done> + <item>_quarantined``), the answer kind (schema, backend) and its prompt."""

    table: str
    stage: str
    kind: str
    item: str
    done: str
    prompt_field: str  # the AnnotatorConfig field that names the prompt file
    check: str  # the manifest's reconciliation entry


# In run order: video_qa writes its QA from the re-captions that video_caption produced in the same unit.
TASKS = {
    "caption": AnnotationTask("motion", "annotate_caption", "caption", "clips", "clips_captioned", "caption_prompt",
                              "captioned_clips"),
    "qa": AnnotationTask("motion", "annotate", "motion", "clips", "clips_annotated", "prompt", "annotated_clips"),
    "video_caption": AnnotationTask("video", "annotate_video", "video", "videos", "videos_annotated", "video_prompt",
                                    "annotated_videos"),
    "video_qa": AnnotationTask("video", "annotate_video_qa", "video_qa", "videos", "videos_qa_annotated",
                               "video_qa_prompt", "video_text_qa"),
}  # fmt: skip


@dataclass(frozen=True)
class ClipRequest:
    motion_id: str  # the clip's id (a video's id for video requests)
    split: str
    prompt: str  # the user message
    facts: dict
    images: tuple[bytes, ...] = ()  # JPEG frames sent as image parts (vision re-captioning)
    captions: tuple[str, ...] = ()


def load_prompt(prompts_dir: str | Path, name: str) -> tuple[str, str]:
    """(text, version) of ``<name>.txt``; the version is the file name and a hash of its text."""
    path = Path(prompts_dir) / f"{name}.txt"
    text = path.read_text(encoding="utf-8")
    return text, f"{name}@{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _span(text: dict) -> str:
    return "whole" if text["start"] == text["end"] == 0 else f"{text['start']:g}-{text['end']:g} s"


def _joint_arrays(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each row's (T, 22, 3) joints as a view of the column's buffer: going through Python lists
    (``as_py``) cost several times what computing the facts does."""
    out = []
    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        flat = chunk.values.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, NUM_JOINTS, 3)
        out += [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return out


def build_requests(motion: pa.Table, template: str, qa_per_clip: int) -> list[ClipRequest]:
    """One request per full clip (sub-clips' captions go into their parent's prompt with their spans)."""
    cols = motion.select(["motion_id", "parent_id", "split", "texts", "fps"]).to_pylist()
    spans = defaultdict(list)
    for r in cols:
        if r["parent_id"]:
            spans[r["parent_id"]] += r["texts"]
    joints = _joint_arrays(motion.column("joints"))
    out = []
    for k, r in enumerate(cols):
        if r["parent_id"]:
            continue
        texts = r["texts"] + spans.get(r["motion_id"], [])
        captions = "\n".join(f"- {t['caption']} ({_span(t)})" for t in texts) or "- (none)"
        facts = motion_facts(joints[k])
        prompt = template.format(captions=captions, facts=facts_text(facts), n=qa_per_clip)
        out.append(ClipRequest(r["motion_id"], r["split"], prompt, facts, captions=tuple(t["caption"] for t in texts)))
    return out


def _stratified(pool: list[dict], k: int, seed: int, key: str) -> list[dict]:
    """``k`` pairs of ``pool``, spread over its categories: categories in a seeded order, a seeded pair from
    each in turn (so a clip's few pairs are not mostly of the category with most templates); pool order kept."""
    def rank(text: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{key}:{text}".encode(), digest_size=8).digest()

    by_cat: dict[str, list[int]] = {}
    for i, qa in enumerate(pool):
        by_cat.setdefault(qa["category"], []).append(i)
    queues = [sorted(ix, key=lambda i: rank(f"pair/{i}")) for _, ix in sorted(by_cat.items(), key=lambda c: rank(c[0]))]
    chosen: list[int] = []
    while len(chosen) < k and any(queues):
        for q in queues:
            if q and len(chosen) < k:
                chosen.append(q.pop(0))
    return [pool[i] for i in sorted(chosen)]


def offline_answer(req: ClipRequest, qa_per_clip: int, seed: int = 0) -> dict:
    """Deterministic QA from the facts (the embedded default backend, ``stages.offline_qa``): every pair
    true to the measured motion, yes/no balanced by a seeded coin, each with its structured ``facts``."""
    pool = motion_qa(req.facts, req.motion_id, seed)
    return {"qa": _stratified(pool, max(1, min(qa_per_clip, len(pool))), seed, req.motion_id)}


_COUNT_WORDS = {"jump": "jumps", "crouch": "crouches", "squat": "crouches"}


def verify_qa(qa: dict, facts: dict) -> str | None:
    """Why a pair contradicts the measured motion, or None. Only what can be checked is checked."""
    if qa.get("direction") and qa["direction"] not in (facts["direction"], facts["turn"]):
        if not (qa["direction"] == "in place" and facts["direction"] == "in place"):
            return f"states direction {qa['direction']!r}; measured travel {facts['direction']!r}, turn {facts['turn']!r}"
    if qa.get("body_part") and qa["category"] == "body_part":
        active = {m["part"] for m in facts["most_active"]}
        if qa["body_part"] not in active:
            return f"names {qa['body_part']!r} as most active; measured: {', '.join(sorted(active))}"
    if qa.get("count") is not None:
        text = (qa["question"] + " " + qa["answer"]).lower()
        for word, key in _COUNT_WORDS.items():
            if re.search(rf"\b{word}", text) and qa["count"] != facts[key]:
                return f"counts {qa['count']} {key}; measured {facts[key]}"
    return None


def _answered(requests, results, stage: str, counts: Counter, rejects: list, unit: str, ok: str):
    """(request, result) pairs that got an answer; the others go to ``rejects`` with their reason.
    Counts ``<unit>_in = <ok> + <unit>_quarantined`` and the usage (requests, tokens, cache hits)."""
    for req, res in zip(requests, results, strict=True):
        counts[f"{unit}_in"] += 1
        counts.update(res.usage)
        if res.error:
            counts[f"{unit}_quarantined"] += 1
            counts[f"dropped_{res.error}"] += 1
            rejects.append(Reject(req.motion_id, "instruction", stage, res.error, res.detail, "annotator", None, req.split))
            continue
        counts[ok] += 1
        yield req, res


def _row(sample_id: str, modality: str, motion_id, video_id, task: str, category: str, question: str, answer: str,
         annotator_row: dict, split: str, facts: dict | None = None) -> dict:  # fmt: skip
    placeholder = {"motion": MOTION_PLACEHOLDER, "video": VIDEO_PLACEHOLDER}[modality]
    return {"sample_id": sample_id, "modality": modality, "motion_id": motion_id, "video_id": video_id, "task": task,
            "category": category, "conversations": [{"role": "user", "content": f"{placeholder}\n{question}"},
                                                    {"role": "assistant", "content": answer}],
            "annotator": annotator_row, "split": split, "facts": _facts_json(facts)}  # fmt: skip


def _facts_json(facts: dict | None) -> str | None:
    """The ``facts`` column (``schemas/instruction.py``): canonical JSON, or null. Only the offline annotator
    writes facts; an LLM's reply cannot carry them (its schema forbids extra keys)."""
    return None if facts is None else json.dumps(facts, sort_keys=True, separators=(",", ":"))


def _provenance(annotator, prompt_version: str, seed: int):
    """The ``annotator`` struct of a row, given the model that answered."""
    params = json.dumps({"seed": seed, **annotator.params}, sort_keys=True)
    return lambda model: {"backend": annotator.name, "model": model, "prompt_version": prompt_version, "params": params}


def _result(rows: list[dict], rejects: list, counts: Counter) -> StageResult:
    counts["instructions_out"] = len(rows)
    return StageResult(tables={"instruction": pa.Table.from_pylist(rows, schema=INSTRUCTION_SCHEMA)},
                       rejects=rejects, counters=counts)  # fmt: skip


def annotate_motions(motion: pa.Table, cfg, *, annotator, template: str, prompt_version: str,
                     seed: int = 0) -> StageResult:  # fmt: skip
    """QA instruction rows for the full clips of ``motion``; ``annotator.answer_all(requests)`` returns one
    ``AnswerResult`` per request (payload or error)."""
    counts: Counter = Counter()
    rejects: list[Reject] = []
    rows = []
    requests = build_requests(motion, template, cfg.qa_per_clip)
    results = annotator.answer_all(requests, kind="motion")
    who = _provenance(annotator, prompt_version, seed)
    for req, res in _answered(requests, results, STAGE, counts, rejects, "clips", "clips_annotated"):
        for i, qa in enumerate(res.payload["qa"]):
            counts["qa_in"] += 1
            sample_id = f"{req.motion_id}/qa/{i}"
            why = verify_qa(qa, req.facts)
            if why:
                counts["qa_quarantined"] += 1
                counts["dropped_contradicts_kinematics"] += 1
                rejects.append(Reject(sample_id, "instruction", STAGE, "contradicts_kinematics", f"{why}: "
                                      f"{qa['question']} → {qa['answer']}", "annotator", None, req.split))  # fmt: skip
                continue
            counts["qa_out"] += 1
            rows.append(_row(sample_id, "motion", req.motion_id, None, "qa", qa["category"], qa["question"],
                             qa["answer"], who(res.model), req.split, qa.get("facts")))  # fmt: skip
    return _result(rows, rejects, counts)


def build_video_requests(video: pa.Table, template: str, qa_per_clip: int) -> list[ClipRequest]:
    """One vision request per video: its sampled frames, their times and its human captions."""
    out = []
    for r in video.select(["video_id", "split", "captions", "frames", "frame_timestamps"]).to_pylist():
        captions = "\n".join(f"- {c}" for c in r["captions"]) or "- (none)"
        times = ", ".join(f"{t:.2f}" for t in r["frame_timestamps"])
        prompt = template.format(captions=captions, times=times, n=qa_per_clip)
        out.append(ClipRequest(r["video_id"], r["split"], prompt, {}, tuple(r["frames"]), tuple(r["captions"])))
    return out


def _as_sentence(text: str) -> str:
    """A human caption as the re-caption's sentence: capital first letter, closing full stop."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def offline_video_answer(req: ClipRequest, qa_per_clip: int, seed: int = 0) -> dict:
    """Without a vision model: the human caption as the description, and QA reasoned from the captions
    (``stages.offline_qa.video_qa``: why, what next, which side, which way, how often, balanced yes/no)."""
    caption = _as_sentence(req.captions[0]) if req.captions else "A person moves."
    pool = video_qa(req.captions, req.motion_id, seed)
    return {"caption": caption, "qa": _stratified(pool, max(1, min(qa_per_clip, len(pool))), seed, req.motion_id)}


def annotate_videos(video: pa.Table, cfg, *, annotator, template: str, prompt_version: str, seed: int = 0) -> StageResult:
    """A re-caption (task caption) and QA rows for each video; counters ``videos_in`` =
    ``videos_annotated`` + ``videos_quarantined``."""
    counts: Counter = Counter()
    rejects: list[Reject] = []
    rows = []
    requests = build_video_requests(video, template, cfg.qa_per_clip)
    results = annotator.answer_all(requests, kind="video")
    who = _provenance(annotator, prompt_version, seed)
    # video QA is not checked against kinematics: a video row carries no joints
    for req, res in _answered(requests, results, "annotate_video", counts, rejects, "videos", "videos_annotated"):
        pairs = [("caption", "caption", "Describe what the person does in this video, in time order.",
                  res.payload["caption"], None)]  # fmt: skip
        pairs += [("qa", qa["category"], qa["question"], qa["answer"], qa.get("facts")) for qa in res.payload["qa"]]
        for i, (task, category, question, answer, facts) in enumerate(pairs):
            rows.append(_row(f"{req.motion_id}/video-{task}/{i}", "video", None, req.motion_id, task, category,
                             question, answer, who(res.model), req.split, facts))  # fmt: skip
    return _result(rows, rejects, counts)


def recaptions_of(instruction: pa.Table) -> dict[str, str]:
    """``video_id`` → the re-caption written from its frames, from ``annotate_videos``' rows."""
    rows = instruction.select(["sample_id", "video_id", "conversations"]).to_pylist()
    return {r["video_id"]: r["conversations"][1]["content"] for r in rows if "/video-caption/" in r["sample_id"]}


def build_video_qa_requests(video: pa.Table, template: str, qa_per_clip: int,
                            recaptions: dict[str, str]) -> list[ClipRequest]:  # fmt: skip
    """One text-only request per video, as MoVid turned its GPT-4V re-captions into QA with a text model: the
    re-caption (when the vision pass wrote one) and the human captions."""
    out = []
    for r in video.select(["video_id", "split", "captions"]).to_pylist():
        recaption = recaptions.get(r["video_id"])
        captions = "\n".join(f"- {c}" for c in r["captions"]) or "- (none)"
        prompt = template.format(recaption=recaption or "(none)", captions=captions, n=qa_per_clip)
        known = ((recaption,) if recaption else ()) + tuple(r["captions"])
        out.append(ClipRequest(r["video_id"], r["split"], prompt, {}, captions=known))
    return out


def annotate_video_qa(video: pa.Table, cfg, *, annotator, template: str, prompt_version: str, seed: int = 0,
                      recaptions: dict[str, str] | None = None) -> StageResult:  # fmt: skip
    """QA rows (task qa) for each video, written from its re-caption and human captions by a text model;
    counters ``videos_in`` = ``videos_qa_annotated`` + ``videos_quarantined``."""
    counts: Counter = Counter()
    rejects: list[Reject] = []
    rows = []
    requests = build_video_qa_requests(video, template, cfg.qa_per_clip, recaptions or {})
    results = annotator.answer_all(requests, kind="video_qa")
    who = _provenance(annotator, prompt_version, seed)
    for req, res in _answered(requests, results, "annotate_video_qa", counts, rejects, "videos", "videos_qa_annotated"):
        for i, qa in enumerate(res.payload["qa"]):
            rows.append(_row(f"{req.motion_id}/video-text-qa/{i}", "video", None, req.motion_id, "qa", qa["category"],
                             qa["question"], qa["answer"], who(res.model), req.split, qa.get("facts")))  # fmt: skip
    return _result(rows, rejects, counts)


def offline_caption(req: ClipRequest, seed: int = 0) -> dict:
    """A detailed caption from the first human caption and the facts, without an LLM."""
    return {"caption": caption_from_facts(req.facts, req.captions, req.motion_id, seed)}


def annotate_captions(motion: pa.Table, cfg, *, annotator, template: str, prompt_version: str, seed: int = 0) -> StageResult:
    """One detailed caption (task caption, category detailed) per full clip; counters ``clips_in`` =
    ``clips_captioned`` + ``clips_quarantined``."""
    counts: Counter = Counter()
    rejects: list[Reject] = []
    rows = []
    requests = build_requests(motion, template, cfg.qa_per_clip)
    results = annotator.answer_all(requests, kind="caption")
    who = _provenance(annotator, prompt_version, seed)
    for req, res in _answered(requests, results, "annotate_caption", counts, rejects, "clips", "clips_captioned"):
        rows.append(_row(f"{req.motion_id}/detailed-caption/0", "motion", req.motion_id, None, "caption", "detailed",
                         "Describe this motion in detail, in time order.", res.payload["caption"], who(res.model), req.split))  # fmt: skip
    return _result(rows, rejects, counts)
