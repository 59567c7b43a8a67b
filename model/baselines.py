"""Baselines printed with every score: what a model that ignores the motion would get.

- **majority**: each bench question answered with the most common answer of its question template among the
  **train** split's QA (``schemas.vocabulary.question_template``: vocabulary mentions → their fact's slot,
  numbers → ``#``), templates keyed within a modality. A template that never occurs in train falls back to
  the most common answer of the question's (modality, category), then of its category, then of all train QA.
  Ties go to the answer that sorts first, so the baseline is deterministic. It is scored by the same judge
  as the model.
- **chance**: the accuracy of a uniform guess where the answer space is closed: yes/no 1/2, a multiple-choice
  question 1/(its options), "X or Y?" 1/2, direction 1/|DIRECTIONS|, turn 1/|TURNS|, body part
  1/|BODY_PARTS| ("which hand?" 1/2), pace 1/|PACES|, "what does the person do after X / first"
  1/|EVENTS|; undefined
  (``None``, shown "—") for counts, numbers and free text. A group's chance is the mean over its questions
  where it is defined, with how many those are.
- **blind** (and any other named predictions): a predictions file scored like the model's
  (``movid score --baseline-predictions blind=FILE``; ``movid evaluate --blind RUN``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from model.facts import parse_question
from schemas import vocabulary as V
from schemas.bench import qa_pairs
from schemas.manifest import has_manifest
from schemas.manifest import load as load_manifest

__all__ = ["chance", "chance_table", "find_build", "majority_predictions", "read_train_qa"]


def find_build(path: str | Path) -> Path | None:
    """The build folder (the one with ``manifest.json``) of a bench path: ``OUT``, ``OUT/bench`` or a bench
    shard ``OUT/bench/part-00000.parquet``; None when there is none."""
    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if has_manifest(cand):
            return cand
    return None


def read_train_qa(out: str | Path, split: str = "train") -> list[dict]:
    """QA pairs (``schemas.bench.qa_pairs`` rows) of the ``split`` instruction shards the manifest lists.
    A listed path that leaves ``OUT`` (``..``, an absolute path, a symlink out) is refused."""
    out = Path(out)
    root = out.resolve()
    manifest = load_manifest(out)
    rows = []
    cols = ["sample_id", "modality", "motion_id", "video_id", "task", "category", "conversations", "split"]
    for s in manifest.shards:
        if s.get("table") != "instruction" or s.get("split") != split:
            continue
        path = (out / s["path"]).resolve()
        if not path.is_relative_to(root):
            raise ValueError(f"{out}: the manifest lists the shard {s['path']!r} outside the build")
        t = pq.read_table(path, columns=cols)
        for r in t.to_pylist():
            if r["task"] == "qa" and r["category"]:
                rows += qa_pairs(r)
    return rows


def _most_common(answers: Counter) -> str:
    return min(answers.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def majority_predictions(train: list[dict], bench: list[dict]) -> tuple[dict[str, str], dict]:
    """(question_id → the majority answer, how each was found: counts of template / category / overall)."""
    by_template: dict[tuple, Counter] = defaultdict(Counter)
    by_mod_cat: dict[tuple, Counter] = defaultdict(Counter)
    by_cat: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for r in train:
        by_template[(r["modality"], V.question_template(r["question"]))][r["answer"]] += 1
        by_mod_cat[(r["modality"], r["category"])][r["answer"]] += 1
        by_cat[r["category"]][r["answer"]] += 1
        overall[r["answer"]] += 1
    preds, how = {}, Counter()
    for r in bench:
        key = (r["modality"], V.question_template(r["question"]))
        for name, table, k in (("template", by_template, key), ("modality/category", by_mod_cat,
                                                                 (r["modality"], r["category"])),
                               ("category", by_cat, r["category"])):  # fmt: skip
            if table.get(k):
                preds[r["question_id"]] = _most_common(table[k])
                how[name] += 1
                break
        else:
            if overall:
                preds[r["question_id"]] = _most_common(overall)
                how["overall"] += 1
    info = {"train_qa": len(train), "templates": len(by_template), "answered_by": dict(how)}
    return preds, info


def chance(question: str, category: str | None = None) -> float | None:
    """The chance accuracy of one question (module docstring), or None where undefined."""
    q = parse_question(question, category)
    if q.options:
        return 1.0 / len(q.options)
    if q.yes_no:
        return 0.5
    if q.alternatives:  # "Does the person turn to the left or to the right?"
        return 1.0 / q.alternatives
    if "order" in q.asks and q.which and len(set(q.facts.order)) >= 2:
        return 1.0 / len(set(q.facts.order))
    if len(re.findall(r"\bwhich\b", q.text)) >= 2:
        return None  # two answers in one ("which part leads at the start, and which one at the end?")
    if "event" in q.asks and (q.anchor is not None or re.search(r"\b(?:first|begin|start|next)", q.text)):
        return 1.0 / len(V.EVENTS)
    if "body_part" in q.asks and q.limb and re.search(r"\bwhich (?:hand|arm|leg|foot|knee|wrist)\b", q.text):
        return 1.0 / len(V.SIDES)  # "Which hand …?": one of two sides
    for kind, table in (("direction", V.DIRECTIONS), ("turn", V.TURNS), ("body_part", V.BODY_PARTS)):
        if kind in q.asks:
            return 1.0 / len(table)
    if q.asks == {"pace"}:
        return 1.0 / len(V.PACES)
    return None


def _group(values: list[float | None]) -> dict:
    defined = [v for v in values if v is not None]
    return {"accuracy": float(np.mean(defined)) if defined else None, "defined": len(defined), "n": len(values)}


def chance_table(bench: list[dict], categories: tuple[str, ...]) -> dict:
    """Chance accuracy overall (``categories``: the five MoVid-Bench ones), all, per category, per modality and
    per modality/category, in the keys ``aggregate`` uses."""
    per_q = [(r, chance(r["question"], r.get("category"))) for r in bench]
    groups: dict[str, dict[str, list]] = {"by_category": defaultdict(list), "by_modality": defaultdict(list),
                                          "by_modality_category": defaultdict(list)}  # fmt: skip
    for r, c in per_q:
        groups["by_category"][r["category"]].append(c)
        groups["by_modality"][r["modality"]].append(c)
        groups["by_modality_category"][f"{r['modality']}/{r['category']}"].append(c)
    out = {"overall": _group([c for r, c in per_q if r["category"] in categories]), "all": _group([c for _, c in per_q])}
    for name, g in groups.items():
        out[name] = {k: _group(v) for k, v in sorted(g.items())}
    return out
