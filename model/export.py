"""``movid export OUT --format llava|alpaca``: the instruction table as JSON for other trainers.

- ``llava``: one record per conversation, LLaVA-style — ``{"id", "motion", "video", "modality", "task",
  "category", "conversations": [{"from": "human"|"gpt", "value"}]}``; the ``<motion>`` / ``<video>``
  placeholders stay in the first human turn, where LLaVA-style loaders splice the modality in.
- ``alpaca``: one record per question-answer turn pair — ``{"instruction", "input", "output", "motion_id",
  "video_id", "modality", "task", "category", "id"}`` — the instruction/input/output form that
  MotionLLM's own scripts read; the placeholder lines are taken out of the instruction (the ids say which
  motion or video the question is about), ``input`` is empty.

Files: ``DIR/<format>/<split>.json`` (a JSON array each), written atomically; rows read with only the
columns needed, split by split, in shard order (so the export is deterministic), from the shards the
manifest lists (a path leading outside ``OUT`` is refused). Exporting into ``OUT`` (the default) holds its lock.
"""

from __future__ import annotations

import json
import os
from contextlib import nullcontext
from pathlib import Path

import pyarrow.parquet as pq

from pipeline import RunStateError, atomic_write_bytes, contained_path, lock_out
from schemas.instruction import EXPORT_FORMATS as FORMATS
from schemas.instruction import PLACEHOLDERS
from schemas.manifest import Manifest
from schemas.manifest import load as load_manifest

__all__ = ["FORMATS", "export"]
ROLE = {"user": "human", "assistant": "gpt"}
COLUMNS = ["sample_id", "modality", "motion_id", "video_id", "task", "category", "conversations", "split"]


def _llava(row: dict) -> dict:
    rec = {"id": row["sample_id"]}
    if row["motion_id"] is not None:
        rec["motion"] = row["motion_id"]
    if row["video_id"] is not None:
        rec["video"] = row["video_id"]
    rec |= {"modality": row["modality"], "task": row["task"], "category": row["category"],
            "conversations": [{"from": ROLE[t["role"]], "value": t["content"]} for t in row["conversations"]]}  # fmt: skip
    return rec


def _strip_placeholders(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() not in PLACEHOLDERS]
    out = "\n".join(lines)
    for p in PLACEHOLDERS:
        out = out.replace(p, "")
    return out.strip()


def _alpaca(row: dict) -> list[dict]:
    turns = row["conversations"]
    out = []
    for k in range(0, len(turns) - 1, 2):
        question, answer = turns[k], turns[k + 1]
        if question["role"] != "user" or answer["role"] != "assistant":
            raise ValueError(f"{row['sample_id']}: turn {k} is not a user turn followed by an assistant turn")
        out.append({"instruction": _strip_placeholders(question["content"]), "input": "", "output": answer["content"],
                    "motion_id": row["motion_id"], "video_id": row["video_id"], "modality": row["modality"],
                    "task": row["task"], "category": row["category"], "id": f"{row['sample_id']}#{k // 2}"})  # fmt: skip
    return out


def export(out: str | Path, fmt: str, dest: str | Path | None = None) -> dict[str, dict]:
    """Write the export; returns ``{split: {"path", "records"}}``."""
    if fmt not in FORMATS:
        raise ValueError(f"--format: one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    load_manifest(out)  # (a clear error when OUT is not a finished build)
    dest = Path(dest) if dest else out / "export"
    in_out = Path(os.path.realpath(out)) in Path(os.path.realpath(dest)).parents
    with lock_out(out, "movid export", create=False) if in_out else nullcontext():
        return _export(out, fmt, dest, load_manifest(out))


def _export(out: Path, fmt: str, dest: Path, manifest: Manifest) -> dict[str, dict]:
    by_split: dict[str, list[str]] = {}
    for s in manifest.shards:
        if s["table"] == "instruction":
            if not isinstance(s["split"], str) or "/" in s["split"] or "\\" in s["split"] or s["split"] in ("", ".", ".."):
                raise RunStateError(f"{out}: the manifest names the split {s['split']!r}, not a file name; run movid validate")
            by_split.setdefault(s["split"], []).append(s["path"])
    written = {}
    for split, paths in sorted(by_split.items()):
        records: list[dict] = []
        for path in paths:
            for row in pq.read_table(contained_path(out, path), columns=COLUMNS).to_pylist():
                if fmt == "llava":
                    records.append(_llava(row))
                else:
                    records += _alpaca(row)
        target = dest / fmt / f"{split}.json"
        atomic_write_bytes(target, json.dumps(records, ensure_ascii=False, indent=1).encode())
        written[split] = {"path": str(target), "records": len(records)}
    return written
