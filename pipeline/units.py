"""One work unit, start to finish: run the stages on its records and publish its staged shards and
stats atomically. This is the function every executor runs; it is idempotent (a finished unit is
returned from its marker, not redone)."""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import BuildConfig
from pipeline.planner import WorkUnit
from pipeline.runstate import RunState, atomic_write_json
from pipeline.shards import write_table_shards
from schemas.quarantine import Reject, rejects_table
from stages.annotate import TASKS, AnnotationTask, recaptions_of
from stages.caption_instructions import caption_instructions, video_caption_instructions
from stages.ingest_humanml3d import ingest_humanml3d

__all__ = ["NO_SPLIT", "run_unit", "write_unit_outputs"]

log = logging.getLogger(__name__)
NO_SPLIT = "_"  # staging folder name for tables that are not split (quarantine)
# Fault-injection hook for tests: seconds each unit sleeps before its work (never set in normal use).
_DELAY_ENV = "MOVID_FAULT_UNIT_DELAY_S"


def write_unit_outputs(
    state: RunState, unit_id: str, tables: dict[str, pa.Table], rejects: list[Reject], stages: dict, cfg: BuildConfig,
    seconds: dict | None = None,
) -> dict:
    """Stage a unit's tables (split by their ``split`` column) and quarantine, then publish them."""
    tmp = state.new_tmp_unit_dir(unit_id)
    try:
        files = []
        parts: list[tuple[str, str, pa.Table]] = []
        for name, table in tables.items():
            splits = pc.unique(table.column("split")).to_pylist()
            if len(splits) == 1:  # the usual case (units are per split): no copy of the tensors
                parts.append((name, splits[0], table))
                continue
            for split in sorted(splits):
                parts.append((name, split, table.filter(pc.equal(table.column("split"), split))))
        if rejects:
            parts.append(("quarantine", NO_SPLIT, rejects_table([replace(r, unit_id=unit_id) for r in rejects])))
        for name, split, part in parts:
            written = write_table_shards(part, name, tmp / name / split, max_rows=cfg.shard.max_rows,
                                         compression=cfg.shard.compression,
                                         row_group_rows=cfg.shard.row_group_rows)  # fmt: skip
            files += [{"table": name, "split": split, **f} for f in written]
        stats = {"unit_id": unit_id, "files": files, "stages": stages}
        if seconds is not None:  # where the unit's time went (stage → s); the write itself is not in it
            stats["seconds"] = {k: round(v, 4) for k, v in seconds.items()}
        atomic_write_json(tmp / "stats.json", stats)
        state.finish_unit(tmp, unit_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return stats


def _ingest(unit: WorkUnit, cfg: BuildConfig):
    if unit.source_kind == "humanml3d":
        batch = pa.table({"motion_id": list(unit.record_ids), "split": [unit.split] * len(unit.record_ids)})
        return ingest_humanml3d(batch, cfg.ingest, root=unit.source_root)
    from stages.ingest_smpl import body_models, ingest_amass, ingest_motionx  # torch/smplx only when needed

    if unit.source_kind in ("amass", "motionx"):
        models = body_models(cfg.smpl)
    if unit.source_kind == "amass":
        names = ("new_name", "source_path", "start_frame", "end_frame", "split", "m_split")
        batch = pa.table({n: [r[k] for r in unit.rows] for k, n in enumerate(names)})
        return ingest_amass(batch, cfg.ingest, root=unit.source_root, models=models, texts=cfg.amass.texts)
    if unit.source_kind == "motionx":
        batch = pa.table({"motion_id": list(unit.record_ids), "split": [unit.split] * len(unit.record_ids)})
        return ingest_motionx(batch, cfg.ingest, root=unit.source_root, models=models, motions=cfg.motionx.motions,
                              texts=cfg.motionx.texts, fps=cfg.motionx.fps)  # fmt: skip
    if unit.source_kind == "video":
        from stages.ingest_video import ingest_video

        names = ("video_id", "path", "captions", "split", "start", "end", "offset", "motion_id", "motion_frames", "smpl")
        cols = {n: [r[k] for r in unit.rows] for k, n in enumerate(names)}
        cols["captions"] = [list(c) for c in cols["captions"]]
        batch = pa.table(cols)
        need_models = any(cols["smpl"])
        return ingest_video(batch, cfg.frames, cfg.align, cfg.ingest, root=unit.source_root,
                            models=body_models(cfg.smpl) if need_models else None, smpl_fps=cfg.video.smpl_fps)  # fmt: skip
    raise ValueError(f"no ingest for source kind {unit.source_kind!r}")


class BudgetExceeded(RuntimeError):
    """The annotation budget is spent: the build stops; rerun with a larger annotator.budget_usd to go on."""


def spent_usd(state: RunState, cfg: BuildConfig) -> float:
    """What the finished units of this build paid for annotation (from their stats)."""
    a, total = cfg.annotator, 0.0
    if state.units_dir.is_dir():
        for stats_file in state.units_dir.glob("*/stats.json"):
            stages = json.loads(stats_file.read_text()).get("stages", {})
            for usage in (stages.get(t.stage, {}) for t in TASKS.values()):
                total += usage.get("prompt_tokens", 0) / 1000 * a.price_per_1k_prompt_tokens
                total += usage.get("completion_tokens", 0) / 1000 * a.price_per_1k_completion_tokens
    return total


def _annotate(table: pa.Table, cfg: BuildConfig, out: str, task: AnnotationTask, **extra):
    """Run one annotation task (``stages.annotate.TASKS``) on ``table``; ``extra`` goes to its stage."""
    from pathlib import Path

    from pipeline.runstate import ANNOTATION_CACHE
    from stages.annotate import (
        annotate_captions,
        annotate_motions,
        annotate_video_qa,
        annotate_videos,
        load_prompt,
    )
    from stages.llm_client import OfflineAnnotator, OpenAIAnnotator

    a = cfg.annotator
    template, version = load_prompt(a.prompts_dir, getattr(a, task.prompt_field))
    if a.backend == "openai" and a.budget_usd is not None:
        spent = spent_usd(RunState(out), cfg)
        if spent >= a.budget_usd:
            raise BudgetExceeded(f"annotation budget spent: ${spent:.2f} of annotator.budget_usd=${a.budget_usd:.2f}; "
                                 "finished units are kept — rerun with a larger budget to go on")  # fmt: skip
    if a.backend == "openai":
        from pipeline.config import config_hash
        from pipeline.ratelimit import actor_name, make_limiter

        limiter = make_limiter(actor_name(config_hash(cfg)), a.requests_per_minute, a.tokens_per_minute)
        annotator = OpenAIAnnotator(a, version, a.cache_dir or Path(out) / ANNOTATION_CACHE, seed=cfg.seed,
                                    limiter=limiter)  # fmt: skip
    else:
        annotator = OfflineAnnotator(a.qa_per_clip, cfg.seed)
    annotate = {"motion": annotate_motions, "caption": annotate_captions, "video": annotate_videos,
                "video_qa": annotate_video_qa}[task.kind]  # fmt: skip
    return annotate(table, a, annotator=annotator, template=template, prompt_version=version, seed=cfg.seed, **extra)


def inject_faults(unit: WorkUnit) -> None:
    """Test-only faults, switched on by environment variables (never set in normal use; the Ray executor
    forwards every ``MOVID_FAULT_*`` variable to its workers).

    ``MOVID_FAULT_SEGFAULT_RECORD=ID[,ID...]``: a unit holding one of these records kills its process with a real
    SIGSEGV, as a native decoder crashing on a bad file would. ``MOVID_FAULT_ENOSPC_UNIT=TEXT``: a unit whose id
    contains TEXT has its first shard write fail with ENOSPC after part of the file is on disk, as on a full disk.
    """
    crash = {r for r in os.environ.get("MOVID_FAULT_SEGFAULT_RECORD", "").split(",") if r}
    if crash.intersection(unit.record_ids):
        import ctypes

        log.warning("fault injection: unit %s crashes with SIGSEGV", unit.unit_id)
        ctypes.string_at(0)  # reads address 0: the kernel sends SIGSEGV
    spec = os.environ.get("MOVID_FAULT_ENOSPC_UNIT")
    if spec and spec in unit.unit_id:
        global write_table_shards
        if not hasattr(write_table_shards, "full_disk"):
            write_table_shards = _full_disk_writer(write_table_shards)


def _full_disk_writer(write):
    """``write_table_shards`` that, in the staging folder of a unit whose id contains MOVID_FAULT_ENOSPC_UNIT,
    writes the beginning of a shard and then fails as a full disk does (fault injection, see ``inject_faults``)."""
    import errno
    from pathlib import Path

    def write_or_fail(table, table_name, folder, **kw):
        spec, folder = os.environ.get("MOVID_FAULT_ENOSPC_UNIT"), Path(folder)
        if not spec or spec not in folder.parent.parent.name:  # .tmp-<unit_id>-<random>/<table>/<split>
            return write(table, table_name, folder, **kw)
        path = folder / "00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"PAR1" + bytes(4096))  # what fitted before the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    write_or_fail.full_disk = True
    return write_or_fail


@contextmanager
def _rarer_collections():
    """A unit builds ~10^5 small objects (captions, conversations and their dicts) that live until its
    tables are written. With CPython's default thresholds every 700 survivors start a collection, and
    the full ones walk everything the process holds (pyarrow, pandas, great-expectations' registries):
    ~40 % of an offline build's time (bench/validate.py: 32.9 s → 21.3 s). Within a unit, collections
    start ~30× less often; reference counting frees almost everything anyway. The defaults come back after."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 20_000), max(old[1], 10), max(old[2], 10))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def run_unit(unit: WorkUnit, cfg: BuildConfig, out: str) -> dict:
    state = RunState(out)
    if state.is_done(unit.unit_id):
        return state.read_stats(unit.unit_id)
    with _rarer_collections():
        return _run_unit(unit, cfg, out, state)


def _run_unit(unit: WorkUnit, cfg: BuildConfig, out: str, state: RunState) -> dict:
    delay = float(os.environ.get(_DELAY_ENV, "0") or 0)
    if delay:
        time.sleep(delay)
    inject_faults(unit)  # test-only faults (MOVID_FAULT_*)
    if cfg.validation.enabled and cfg.annotator.backend != "openai":
        # (with an LLM annotator the import is noise next to the requests, and a thread holding the GIL
        # for seconds would delay request sends, blurring the rate limit's spacing)
        from stages.validate import preload

        preload()
    t0 = time.perf_counter()
    ingest = _ingest(unit, cfg)
    seconds = {"ingest": time.perf_counter() - t0}
    ingest_stage = f"ingest_{unit.source_kind}"
    tables = dict(ingest.tables)
    rejects = list(ingest.rejects)
    stages = {ingest_stage: dict(ingest.counters)}
    parts = []
    if cfg.instructions.caption_conversations:  # the human captions as conversations
        if "motion" in tables:
            captions = caption_instructions(tables["motion"], seed=cfg.seed)
            stages["caption_instructions"] = dict(captions.counters)
            parts.append(captions.tables["instruction"])
        if "video" in tables:
            video_captions = video_caption_instructions(tables["video"], seed=cfg.seed)
            stages["video_caption_instructions"] = dict(video_captions.counters)
            parts.append(video_captions.tables["instruction"])
    recaptions: dict[str, str] = {}
    for name, task in TASKS.items():  # the annotator's captions and QA, in TASKS' order
        if name not in cfg.annotator.tasks or cfg.annotator.backend == "none":
            continue
        if task.table in tables and tables[task.table].num_rows:
            extra = {"recaptions": recaptions} if name == "video_qa" else {}
            annotated = _annotate(tables[task.table], cfg, out, task, **extra)
            stages[task.stage] = dict(annotated.counters)
            parts.append(annotated.tables["instruction"])
            rejects += annotated.rejects
            if name == "video_caption":
                recaptions = recaptions_of(annotated.tables["instruction"])
    if parts:
        tables["instruction"] = pa.concat_tables(parts)
    seconds["instructions"] = time.perf_counter() - t0 - seconds["ingest"]
    if cfg.validation.enabled and tables:
        from stages.validate import engine_ready, setup_seconds, validate_tables

        t1 = time.perf_counter()
        waited = engine_ready()  # (the import's time, in validate_setup below)
        checked = validate_tables(tables, cfg, source=unit.source_kind)
        tables, stages["validate"] = checked.tables, dict(checked.counters)
        rejects += checked.rejects
        seconds["validate"] = time.perf_counter() - t1 - waited
        setup = setup_seconds()  # once per worker process: the great-expectations import's CPU time
        if setup:
            seconds["validate_setup"] = setup
    stats = write_unit_outputs(state, unit.unit_id, tables, rejects, stages, cfg, seconds=seconds)
    log.debug("unit %s done in %.2fs: %s", unit.unit_id, time.perf_counter() - t0, Counter(stages[ingest_stage]))
    return stats
