"""The bench table (MoVid-Bench style): one row per question-answer turn pair of the **test** split's QA
conversations, chosen per (modality, category) by quotas that default to MoVid-Bench's counts (motion:
body part 205, sequentiality 171, direction 140, reasoning 148, hallucination 36 of 700; video: 167, 216,
43, 185, 39 of 650), scaled to the questions available, picked deterministically by seed.

Counting (``bench.motion.counting``, ``bench.video.counting``) is not a MoVid-Bench category: it is
selected the same way but stored as its own ``category``, and a score reports it apart from the five
(:data:`MOVID_BENCH_CATEGORIES`: the "overall" figure comparable with the paper's; then counting; then all).

Scaling: per modality, ``s = min(1, available / quota total)`` over the categories with a quota and at least
one question (a category the data cannot fill does not shrink the others); each category then takes ``min(available_c, max(1, round(quota_c * s)))`` questions (proportions kept as far as
the scarce categories allow; a category with questions is never left empty), the ones whose
``sha256(seed:question_id)`` sorts first — independent of row order, so the same build gives the same bench.
A question from a clip of another split is a bug and raises :class:`BenchLeakError`.

Written at commit (``pipeline/manifest.py`` calls :func:`commit_bench`) as ``OUT/bench/part-00000.parquet``, by
the shard writer of the other tables; ``model.bench.read_bench`` reads it. Data side: the derivation needs the
committed shards and the build's config, and the commit needs its result in the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.runstate import atomic_write_bytes
from pipeline.shards import write_table_shards
from schemas.bench import BENCH_MODALITIES, BENCH_SCHEMA, qa_pairs

__all__ = ["BENCH_PATH", "BenchLeakError", "bench_rows", "check_no_leak", "commit_bench", "select"]

BENCH_PATH = "bench/part-00000.parquet"


class BenchLeakError(RuntimeError):
    """A bench question comes from (or is about a clip of) a split other than test."""


def _rank(seed: int, question_id: str) -> str:
    return hashlib.sha256(f"{seed}:{question_id}".encode()).hexdigest()


def select(candidates: list[dict], quotas: dict[str, dict[str, int]], seed: int) -> tuple[list[dict], dict]:
    """Choose bench rows from ``candidates`` (bench-row dicts) by ``quotas`` {modality: {category: n}}.
    Returns (rows sorted by question_id, {modality: {category: {quota, available, target, chosen}}})."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for c in candidates:
        by_key.setdefault((c["modality"], c["category"]), []).append(c)
    chosen, stats = [], {}
    for modality, q in quotas.items():
        wanted = {cat: n for cat, n in q.items() if n > 0}
        avail = {cat: len(by_key.get((modality, cat), [])) for cat in wanted}
        total_quota = sum(n for cat, n in wanted.items() if avail[cat])
        s = min(1.0, sum(avail.values()) / total_quota) if total_quota else 0.0
        stats[modality] = {}
        for cat, n in wanted.items():
            target = min(avail[cat], max(1, int(round(n * s))))  # every category with questions shows up
            pool = sorted(by_key.get((modality, cat), []), key=lambda r: _rank(seed, r["question_id"]))
            chosen += pool[:target]
            stats[modality][cat] = {"quota": n, "available": avail[cat], "target": max(1, int(round(n * s))),
                                    "chosen": target}  # fmt: skip
    return sorted(chosen, key=lambda r: r["question_id"]), stats


def _quotas(bench_cfg) -> dict[str, dict[str, int]]:
    return {m: dataclasses.asdict(getattr(bench_cfg, m)) for m in BENCH_MODALITIES}


def bench_rows(instructions: list[dict], bench_cfg, seed: int, *, video_motion: dict[str, str | None] | None = None,
               other_split_clips: set[str] | None = None) -> tuple[list[dict], dict]:
    """The bench from instruction rows (dicts). Only ``split == "test"`` QA rows are candidates; the chosen
    rows are checked again (split, and that no motion/video id belongs to ``other_split_clips``)."""
    video_motion = video_motion or {}
    candidates = []
    for r in instructions:
        if r["task"] != "qa" or r["split"] != "test" or r["modality"] not in BENCH_MODALITIES or not r.get("category"):
            continue
        for p in qa_pairs(r):
            if p["motion_id"] is None and p["video_id"] is not None:
                p["motion_id"] = video_motion.get(p["video_id"])  # the motion the video shows, if linked
            candidates.append(p)
    rows, stats = select(candidates, _quotas(bench_cfg), seed)
    check_no_leak(rows, other_split_clips or set())
    return rows, stats


def check_no_leak(rows: list[dict], other_split_clips: set[str]) -> None:
    for r in rows:
        if r["split"] != "test":
            raise BenchLeakError(f"bench question {r['question_id']} comes from split {r['split']!r}, not test")
        for key in ("motion_id", "video_id"):
            if r[key] is not None and r[key] in other_split_clips:
                raise BenchLeakError(f"bench question {r['question_id']}: {key} {r[key]!r} is in a train/val split")


def _read(out: Path, shards: list[dict], table: str, columns: list[str], split: str | None = None) -> list[dict]:
    paths = [out / s["path"] for s in shards if s["table"] == table and (split is None or s["split"] == split)]
    return [r for p in paths for r in pq.read_table(p, columns=columns).to_pylist()]


def commit_bench(out: str | Path, shards: list[dict], cfg) -> dict | None:
    """Write ``OUT/bench/part-00000.parquet`` (more parts past ``shard.max_rows`` rows) from the committed
    shards (manifest entries) of a build. Returns ``{"rows", "sha256" (of the parts' sha256s in order; with
    one part, the sha256 of its sha256), "shards" (manifest shard entries), "seed", "by_modality",
    "selection" (per category: quota, available, target, chosen)}``, or None when ``bench.enabled`` is false."""
    if not cfg.bench.enabled:
        return None
    out = Path(out)
    instr_cols = ["sample_id", "modality", "motion_id", "video_id", "task", "category", "conversations", "split",
                  "facts"]  # fmt: skip
    instructions = _read(out, shards, "instruction", instr_cols, split="test")
    videos = _read(out, shards, "video", ["video_id", "motion_id", "split"])
    motions = _read(out, shards, "motion", ["motion_id", "parent_id", "mirror_of", "split"])
    others = {v["video_id"] for v in videos if v["split"] != "test"}
    for m in motions:  # a clip's id, its sub-clips' and mirror's roots: none may be outside test
        if m["split"] != "test":
            others |= {m["motion_id"]} | {x for x in (m["parent_id"], m["mirror_of"]) if x}
    seed = cfg.seed if cfg.bench.seed is None else cfg.bench.seed
    rows, stats = bench_rows(instructions, cfg.bench, seed,
                             video_motion={v["video_id"]: v["motion_id"] for v in videos},
                             other_split_clips=others)  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=BENCH_SCHEMA)
    folder = out / "bench"
    if folder.is_symlink():  # movid's own folder name: a planted link is removed as a link, never followed
        folder.unlink()
    for stale in folder.glob("part-*.parquet") if folder.is_dir() else ():
        if stale.is_symlink() or stale.is_file():
            stale.unlink()  # a rerun of the commit writes them all again (a link goes as a link)
    files = write_table_shards(table, "bench", folder, max_rows=cfg.shard.max_rows, compression=cfg.shard.compression,
                               row_group_rows=cfg.shard.row_group_rows, file_name="part-{:05d}.parquet", min_files=1,
                               write_bytes=atomic_write_bytes)  # fmt: skip
    parts = [{"table": "bench", "split": "_", "rows": f["rows"], "bytes": f["bytes"], "sha256": f["sha256"],
              "path": f"bench/{f['file']}"} for f in files]  # fmt: skip
    digest = hashlib.sha256("\n".join(p["sha256"] for p in parts).encode()).hexdigest()
    return {"rows": table.num_rows, "sha256": digest, "shards": parts, "seed": seed,
            "by_modality": dict(Counter(r["modality"] for r in rows)), "selection": stats}  # fmt: skip
