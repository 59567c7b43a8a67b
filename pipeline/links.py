"""The link pass between the units and the commit: a video aligned to a motion that its own ingest or
validation quarantined (in another unit, possibly at the same moment) would point at nothing. Once every
unit is done, each video unit with such a link is rewritten: the video goes to quarantine
(``motion_quarantined``, naming the motion and why it went) with the conversations about it
(``parent_quarantined``). Counted as the stage ``link`` so the manifest still reconciles.

Idempotent and crash-safe: a rewritten unit replaces the old one by renames (old away, new in, old
deleted); a crash in between leaves the unit unfinished, the resumed build runs it again, and this pass
finds and fixes the same links again.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas.quarantine import Reject

__all__ = ["relink_quarantined_motions"]

log = logging.getLogger(__name__)


def _staged(state, stats: dict, table: str, columns: list[str] | None = None) -> pa.Table | None:
    parts = [pq.read_table(state.unit_dir(stats["unit_id"]) / f["table"] / f["split"] / f["file"], columns=columns)
             for f in stats["files"] if f["table"] == table]  # fmt: skip
    return pa.concat_tables(parts) if parts else None


def relink_quarantined_motions(state, unit_ids: list[str], cfg) -> int:
    """Fix the video units among ``unit_ids`` (finished) whose videos name a motion that is in no staged
    motion table. Returns the number of videos sent to quarantine."""
    from pipeline.units import write_unit_outputs

    for old in state.units_dir.glob(".old-*"):  # a rewrite that died after moving the old unit away
        shutil.rmtree(old, ignore_errors=True)
    all_stats = [state.read_stats(u) for u in unit_ids if state.is_done(u)]
    linked = []
    for stats in all_stats:
        videos = _staged(state, stats, "video", ["video_id", "motion_id"])
        if videos is not None and videos.column("motion_id").null_count < videos.num_rows:
            linked.append((stats, videos))
    if not linked:
        return 0
    accepted: set[str] = set()
    for stats in all_stats:
        motions = _staged(state, stats, "motion", ["motion_id"])
        if motions is not None:
            accepted.update(motions.column("motion_id").to_pylist())
    why: dict[str, str] = {}  # quarantined motion id → its reason
    for stats in all_stats:
        q = _staged(state, stats, "quarantine", ["record_id", "table", "reason"])
        if q is not None:
            for r in q.to_pylist():
                if r["table"] == "motion":
                    why.setdefault(r["record_id"], r["reason"])
    moved = 0
    for stats, videos in linked:
        dangling = {v: m for v, m in zip(videos.column("video_id").to_pylist(), videos.column("motion_id").to_pylist(),
                                         strict=True) if m is not None and m not in accepted}  # fmt: skip
        if dangling:
            moved += len(dangling)
            _rewrite(state, stats, dangling, why, cfg, write_unit_outputs)
    return moved


def _rewrite(state, stats: dict, dangling: dict[str, str], why: dict[str, str], cfg, write_unit_outputs) -> None:
    unit_id = stats["unit_id"]
    # every table the unit staged (the declared stages' outputs), rewritten as it was but for the links fixed here
    names = dict.fromkeys(f["table"] for f in stats["files"] if f["table"] != "quarantine")
    tables = {t: _staged(state, stats, t) for t in names}
    quarantine = _staged(state, stats, "quarantine")
    rejects = [Reject(**r) for r in quarantine.to_pylist()] if quarantine is not None else []
    counters: Counter = Counter()
    video = tables["video"]
    gone = pc.is_in(video.column("video_id"), pa.array(sorted(dangling), pa.string()))
    for row in video.filter(gone).select(["video_id", "source", "source_path", "split"]).to_pylist():
        motion = dangling[row["video_id"]]
        rejects.append(Reject(row["video_id"], "video", "link", "motion_quarantined",
                              f"{row['video_id']}: its motion {motion} was quarantined "
                              f"({why.get(motion, 'not in the build')})", row["source"], row["source_path"], row["split"]))  # fmt: skip
    counters.update(video_in=video.num_rows, video_quarantined=len(dangling), video_out=video.num_rows - len(dangling),
                    dropped_motion_quarantined=len(dangling))  # fmt: skip
    tables["video"] = video.filter(pc.invert(gone))
    if "instruction" in tables:
        instr = tables["instruction"]
        orphan = pc.fill_null(pc.is_in(instr.column("video_id"), pa.array(sorted(dangling), pa.string())), False)
        for row in instr.filter(orphan).select(["sample_id", "video_id", "split"]).to_pylist():
            rejects.append(Reject(row["sample_id"], "instruction", "link", "parent_quarantined",
                                  f"{row['sample_id']}: its video {row['video_id']} was quarantined (motion_quarantined)",
                                  "video", None, row["split"]))  # fmt: skip
        n = int(pc.sum(orphan).as_py() or 0)
        counters.update(instruction_in=instr.num_rows, instruction_quarantined=n, instruction_out=instr.num_rows - n,
                        dropped_parent_quarantined=n)  # fmt: skip
        tables["instruction"] = instr.filter(pc.invert(orphan))
    stages = dict(stats["stages"]) | {"link": dict(counters)}
    old = state.units_dir / f".old-{unit_id}"
    os.rename(state.unit_dir(unit_id), old)  # from here until the new one is in, the unit counts as not done
    write_unit_outputs(state, unit_id, tables, rejects, stages, cfg, seconds=stats.get("seconds"))
    shutil.rmtree(old, ignore_errors=True)
    log.info("unit %s: %d video(s) whose motion was quarantined moved to quarantine", unit_id, len(dangling))
