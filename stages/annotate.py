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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from schemas.instruction import INSTRUCTION_SCHEMA, MOTION_PLACEHOLDER, VIDEO_PLACEHOLDER
from schemas.motion import NUM_JOINTS
from schemas.quarantine import Reject
from stages import StageResult
from stages.motion_facts import BODY_PARTS, facts_text, motion_facts_batch
from stages.offline_qa import caption_from_facts, motion_qa, video_qa

__all__ = ["CATEGORIES", "QA_SCHEMA", "TASKS", "AnnotationTask", "ClipRequest", "annotate", "build_requests",
           "build_video_qa_requests", "build_video_requests", "caption_schema", "joint_arrays", "load_prompt",
           "offline_answer", "offline_caption", "offline_video_answer", "qa_schema", "verify_qa", "video_schema"]  # fmt: skip

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


def joint_arrays(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each row's (T, 22, 3) joints as a view of the column's buffer: going through Python lists
    (``as_py``) cost several times what computing the facts does."""
    out = []
    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        flat = chunk.values.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, NUM_JOINTS, 3)
        out += [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return out


def build_requests(motion: pa.Table, template: str, qa_per_clip: int, memo: dict | None = None) -> list[ClipRequest]:
    """One request per full clip (sub-clips' captions go into their parent's prompt with their spans).
    ``memo`` (motion id → facts) keeps each clip's facts for the next task of the same unit: the caption and
    the QA task read the same clips, and the facts are most of a request's cost."""
    memo = {} if memo is None else memo
    cols = motion.select(["motion_id", "parent_id", "split", "texts", "fps"]).to_pylist()
    spans = defaultdict(list)
    for r in cols:
        if r["parent_id"]:
            spans[r["parent_id"]] += r["texts"]
    joints = joint_arrays(motion.column("joints"))
    todo = [k for k, r in enumerate(cols) if not r["parent_id"] and r["motion_id"] not in memo]
    memo.update(zip([cols[k]["motion_id"] for k in todo], motion_facts_batch([joints[k] for k in todo]), strict=True))
    out = []
    for r in cols:
        if r["parent_id"]:
            continue
        texts = r["texts"] + spans.get(r["motion_id"], [])
        captions = "\n".join(f"- {t['caption']} ({_span(t)})" for t in texts) or "- (none)"
        facts = memo[r["motion_id"]]
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


def build_video_qa_requests(video: pa.Table, template: str, qa_per_clip: int,
                            recaptions: dict[str, str] | None = None) -> list[ClipRequest]:  # fmt: skip
    """One text-only request per video, as MoVid turned its GPT-4V re-captions into QA with a text model: the
    re-caption (when the vision pass wrote one) and the human captions."""
    out = []
    recaptions = recaptions or {}
    for r in video.select(["video_id", "split", "captions"]).to_pylist():
        recaption = recaptions.get(r["video_id"])
        captions = "\n".join(f"- {c}" for c in r["captions"]) or "- (none)"
        prompt = template.format(recaption=recaption or "(none)", captions=captions, n=qa_per_clip)
        known = ((recaption,) if recaption else ()) + tuple(r["captions"])
        out.append(ClipRequest(r["video_id"], r["split"], prompt, {}, captions=known))
    return out


def offline_caption(req: ClipRequest, seed: int = 0) -> dict:
    """A detailed caption from the first human caption and the facts, without an LLM."""
    return {"caption": caption_from_facts(req.facts, req.captions, req.motion_id, seed)}




# --- the annotation tasks: what each asks and which rows its answers become ---------------------------------


@dataclass
class _Tally:
    """What a task's answers add up to in one unit; ``shared`` is the unit's memo that the tasks share
    (``facts``: motion id → facts; ``recaptions``: video id → the vision pass's re-caption)."""

    counts: Counter = field(default_factory=Counter)
    rejects: list[Reject] = field(default_factory=list)
    shared: dict = field(default_factory=dict)


def _qa_rows(req: ClipRequest, payload: dict, who: dict, t: _Tally) -> list[dict]:
    """Motion QA: each pair checked against the clip's facts; a contradicted one goes to quarantine."""
    rows = []
    for i, qa in enumerate(payload["qa"]):
        t.counts["qa_in"] += 1
        sample_id = f"{req.motion_id}/qa/{i}"
        why = verify_qa(qa, req.facts)
        if why:
            t.counts["qa_quarantined"] += 1
            t.counts["dropped_contradicts_kinematics"] += 1
            t.rejects.append(Reject(sample_id, "instruction", "annotate", "contradicts_kinematics", f"{why}: "
                                    f"{qa['question']} → {qa['answer']}", "annotator", None, req.split))  # fmt: skip
            continue
        t.counts["qa_out"] += 1
        rows.append(_row(sample_id, "motion", req.motion_id, None, "qa", qa["category"], qa["question"],
                         qa["answer"], who, req.split, qa.get("facts")))  # fmt: skip
    return rows


def _caption_rows(req: ClipRequest, payload: dict, who: dict, t: _Tally) -> list[dict]:
    """One detailed caption (task caption, category detailed) per full clip."""
    return [_row(f"{req.motion_id}/detailed-caption/0", "motion", req.motion_id, None, "caption", "detailed",
                 "Describe this motion in detail, in time order.", payload["caption"], who, req.split)]  # fmt: skip


def _video_rows(req: ClipRequest, payload: dict, who: dict, t: _Tally) -> list[dict]:
    """A re-caption (task caption) and QA per video; the re-caption is kept for the video_qa task. Video QA is
    not checked against kinematics: a video row carries no joints."""
    t.shared.setdefault("recaptions", {})[req.motion_id] = payload["caption"]
    pairs = [("caption", "caption", "Describe what the person does in this video, in time order.",
              payload["caption"], None)]  # fmt: skip
    pairs += [("qa", qa["category"], qa["question"], qa["answer"], qa.get("facts")) for qa in payload["qa"]]
    return [_row(f"{req.motion_id}/video-{task}/{i}", "video", None, req.motion_id, task, category, question,
                 answer, who, req.split, facts) for i, (task, category, question, answer, facts) in enumerate(pairs)]


def _video_qa_rows(req: ClipRequest, payload: dict, who: dict, t: _Tally) -> list[dict]:
    """QA (task qa) per video, written by a text model from its re-caption and human captions."""
    return [_row(f"{req.motion_id}/video-text-qa/{i}", "video", None, req.motion_id, "qa", qa["category"],
                 qa["question"], qa["answer"], who, req.split, qa.get("facts")) for i, qa in enumerate(payload["qa"])]


@dataclass(frozen=True)
class AnnotationTask:
    """One annotation task (``annotator.tasks``): the table it reads, the stage its counters go under
    (``<item>_in = <done> + <item>_quarantined``), the answer kind (schema, backend), its prompt, how its
    requests are built from the table and which rows an answer becomes."""

    table: str
    stage: str
    kind: str
    item: str
    done: str
    prompt_field: str  # the AnnotatorConfig field that names the prompt file
    check: str  # the manifest's reconciliation entry
    requests: Callable[[pa.Table, str, int, dict], list[ClipRequest]]  # (table, template, qa_per_clip, shared)
    rows: Callable[[ClipRequest, dict, dict, _Tally], list[dict]]  # (request, payload, annotator row, tally)
    pair_counters: tuple[str, ...] = ()  # qa_in = qa_out + qa_quarantined, when pairs are checked one by one


# In run order: video_qa writes its QA from the re-captions that video_caption produced in the same unit.
TASKS = {
    "caption": AnnotationTask("motion", "annotate_caption", "caption", "clips", "clips_captioned", "caption_prompt",
                              "captioned_clips", lambda tb, tp, n, sh: build_requests(tb, tp, n, sh.setdefault("facts", {})),
                              _caption_rows),
    "qa": AnnotationTask("motion", "annotate", "motion", "clips", "clips_annotated", "prompt", "annotated_clips",
                         lambda tb, tp, n, sh: build_requests(tb, tp, n, sh.setdefault("facts", {})), _qa_rows,
                         ("qa_in", "qa_out", "qa_quarantined")),
    "video_caption": AnnotationTask("video", "annotate_video", "video", "videos", "videos_annotated", "video_prompt",
                                    "annotated_videos", lambda tb, tp, n, sh: build_video_requests(tb, tp, n),
                                    _video_rows),
    "video_qa": AnnotationTask("video", "annotate_video_qa", "video_qa", "videos", "videos_qa_annotated",
                               "video_qa_prompt", "video_text_qa",
                               lambda tb, tp, n, sh: build_video_qa_requests(tb, tp, n, sh.get("recaptions")),
                               _video_qa_rows),
}  # fmt: skip


def annotate(table: pa.Table, task: AnnotationTask, cfg, *, annotator, template: str, prompt_version: str,
             seed: int = 0, shared: dict | None = None) -> StageResult:  # fmt: skip
    """The instruction rows of one annotation task over ``table``. ``annotator.answer_all(requests, kind=)``
    returns one ``AnswerResult`` per request (payload or error); a request without an answer goes to quarantine.
    ``shared``: the unit's memo the tasks share (facts computed once per clip, the video re-captions)."""
    tally = _Tally(shared=shared if shared is not None else {})
    requests = task.requests(table, template, cfg.qa_per_clip, tally.shared)
    results = annotator.answer_all(requests, kind=task.kind)
    who = _provenance(annotator, prompt_version, seed)
    rows = []
    for req, res in _answered(requests, results, task.stage, tally.counts, tally.rejects, task.item, task.done):
        rows += task.rows(req, res.payload, who(res.model), tally)
    return _result(rows, tally.rejects, tally.counts)
