"""``movid evaluate --checkpoint RUN --bench OUT/bench``: the trained model answers every bench question
(greedy, the training template's prompt, the question's motion and/or video from the build), the answers
go to a predictions file (``question_id``, ``prediction``, JSONL), and ``movid score``'s scorer judges them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads
from tqdm.auto import tqdm

from model.generate import Answerer

__all__ = ["predict_bench"]


def _by_id(out: Path, table: str, key: str, column: str, ids: list[str]) -> dict:
    folder = out / table
    if not ids or not folder.is_dir():
        return {}
    t = pads.dataset(str(folder), format="parquet").to_table(columns=[key, column], filter=pc.field(key).isin(ids))
    return dict(zip(t.column(key).to_pylist(), t.column(column).to_pylist(), strict=True))


def predict_bench(checkpoint: str | Path, bench: list[dict], data: str | Path, dest: str | Path, *,
                  max_new_tokens: int = 64, limit: int | None = None, show_progress: bool = True) -> Path:  # fmt: skip
    """Answer ``bench`` rows (``model.bench.read_bench``) with the checkpoint; writes ``dest`` (JSONL)."""
    rows = bench[:limit] if limit else bench
    answerer = Answerer(checkpoint)
    data = Path(data)
    motions = _by_id(data, "motion", "motion_id", "features", sorted({r["motion_id"] for r in rows if r["motion_id"]}))
    videos = _by_id(data, "video", "video_id", "frames", sorted({r["video_id"] for r in rows if r["video_id"]}))
    use_video = answerer.cfg.video.tower is not None
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    items = []
    for r in rows:
        motion = np.asarray(motions[r["motion_id"]], np.float32) if r["motion_id"] in motions else None
        video = videos.get(r["video_id"]) if use_video and r["video_id"] else None
        if motion is None and video is None:
            raise KeyError(f"bench question {r['question_id']}: its motion/video is not in {data}")
        items.append((r["question"], motion, video))
    chunk = 256  # questions per answer_many call: batched generation, and a progress bar that moves
    with open(tmp, "w", encoding="utf-8") as fh, tqdm(total=len(rows), desc="answering the bench", unit="question",
                                                      disable=not show_progress) as bar:  # fmt: skip
        for start in range(0, len(rows), chunk):
            answers = answerer.answer_many(items[start : start + chunk], max_new_tokens=max_new_tokens)
            for r, answer in zip(rows[start : start + chunk], answers, strict=True):
                fh.write(json.dumps({"question_id": r["question_id"], "prediction": answer}, ensure_ascii=False) + "\n")
            bar.update(len(answers))
    tmp.replace(dest)
    return dest
