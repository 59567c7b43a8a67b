"""Record-level validation of a work unit's tables with great-expectations, before they are written.

Each table is summarised into one row per record of plain columns (frame counts, finiteness, conversation
shape…), and an expectation suite runs on that summary. Every expectation carries the quarantine reason
its failures get (``meta.reason``). Motion plausibility measures (vectorised over a unit's frames) are
compared with their limits directly: a flag (``motion.quality_flags``) or, with ``action: quarantine``, a
reason of their own. A rejected motion takes the instructions about it along
(reason ``parent_quarantined``), so no row in the output points at a record that is not there.

Table-level checks across all shards (duplicate ids, split leakage, references between tables) run at
commit and in ``movid validate`` (``pipeline/validation.py``); they use the same engine.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import asdict

import numpy as np
import pyarrow as pa

from schemas.quarantine import Reject
from stages import StageResult
from stages.gx_engine import (
    content_digest,
    engine_ready,
    expectation_class,
    gx_module,
    preload,
    run_suite,
    setup_seconds,
)
from stages.plausibility import PLAUSIBILITY_FLAGS, PLAUSIBILITY_LIMITS, plausibility, plausibility_batch
from stages.record_summaries import instruction_summary, motion_summary, video_summary

__all__ = ["PLAUSIBILITY_FLAGS", "PLAUSIBILITY_LIMITS", "SPLITS", "engine_ready", "expectation_class", "gx_module",
           "plausibility", "plausibility_batch", "preload", "run_suite", "setup_seconds", "validate_tables"]  # fmt: skip

SPLITS = ("train", "val", "test")


# --- suites --------------------------------------------------------------------------------------------
def _suites(ingest_cfg, frames_cfg, plaus_cfg) -> dict[str, list]:
    in_set, in_range = expectation_class("ExpectColumnValuesToBeInSet"), expectation_class("ExpectColumnValuesToBeBetween")

    def is_true(column, reason):
        return in_set(column=column, value_set=[True], meta={"reason": reason})

    def all_ok(column):  # a categorical summary column: "ok" or the reason itself
        return in_set(column=column, value_set=["ok"], meta={"reason_in": column})

    def between(column, lo, hi, *, reason=None, flag=None):
        meta = {"reason": reason} if reason else {"flag": flag, "quarantine_reason": f"implausible_{flag}"}
        return in_range(column=column, min_value=lo, max_value=hi, meta=meta)

    motion = [
        in_set(column="split", value_set=list(SPLITS), meta={"reason": "invalid_split"}),
        all_ok("arrays"),  # shape_mismatch, non_finite
        between("num_frames", ingest_cfg.min_frames, ingest_cfg.max_frames, reason="invalid_length"),
        between("fps", ingest_cfg.fps - 1e-3, ingest_cfg.fps + 1e-3, reason="wrong_fps"),
        all_ok("captions"),  # no_caption, empty_caption, invalid_span
    ]
    k = frames_cfg.num_frames if frames_cfg.mode == "uniform" else None
    video = [
        in_set(column="split", value_set=list(SPLITS), meta={"reason": "invalid_split"}),
        between("fps", 1e-3, None, reason="invalid_video_header"),
        between("width", 1, None, reason="invalid_video_header"),
        between("height", 1, None, reason="invalid_video_header"),
        between("n_sampled", k or 1, k, reason="wrong_frame_count"),
        is_true("lists_match", "wrong_frame_count"),
        is_true("frames_decodable", "undecodable_frame"),
        is_true("timestamps_increasing", "timestamps_not_increasing"),
        is_true("indices_in_range", "frame_index_out_of_range"),
    ]
    from schemas.instruction import MODALITIES, TASKS

    instruction = [
        in_set(column="split", value_set=list(SPLITS), meta={"reason": "invalid_split"}),
        in_set(column="modality", value_set=list(MODALITIES), meta={"reason": "invalid_modality"}),
        in_set(column="task", value_set=list(TASKS), meta={"reason": "invalid_task"}),
        all_ok("conversation"),  # malformed_conversation, empty_turn, missing_placeholder
        all_ok("links"),  # missing_motion, missing_video, parent_quarantined
    ]  # fmt: skip
    return {"motion": motion, "video": video, "instruction": instruction}


_SUITES: OrderedDict[str, dict[str, list]] = OrderedDict()  # config hash -> suites, least recently used first
_SUITES_KEPT = 4


def _suites_for(ingest_cfg, frames_cfg, plaus_cfg) -> dict[str, list]:
    """The record-level suites of a config, built once per process for the content of the config sections
    that make them (a hash of their values: any field, a list included, and never an object's identity)."""
    key = content_digest([asdict(ingest_cfg), asdict(frames_cfg), asdict(plaus_cfg)])
    suites = _SUITES.get(key)
    if suites is None:
        suites = _SUITES[key] = _suites(ingest_cfg, frames_cfg, plaus_cfg)
        while len(_SUITES) > _SUITES_KEPT:
            _SUITES.popitem(last=False)
    _SUITES.move_to_end(key)
    return suites


def _plausibility_failures(df, plaus) -> list[tuple[dict, list[int], None]]:
    """Clips over a plausibility limit, as ``run_suite`` reports failures (meta with the flag, rows). The
    measures are vectorised heuristics that flag rather than contract checks, so they are compared here
    directly; the suite keeps great-expectations' per-expectation cost (~5 ms a run) for the contract."""
    out = []
    for column, field, flag in PLAUSIBILITY_LIMITS:
        limit = getattr(plaus, field)
        rows = np.flatnonzero(~(df[column].to_numpy() <= limit))
        if rows.size:
            meta = {"flag": flag, "quarantine_reason": f"implausible_{flag}", "column": column, "limit": limit,
                    "setting": f"validation.plausibility.{field}"}  # fmt: skip
            out.append((meta, rows.tolist(), None))
    return out


def _detail(df, row: int, meta: dict, result) -> str:
    if result is None:  # a plausibility limit
        return f"{meta['column']}={float(df.iloc[row][meta['column']]):.4g} is over {meta['setting']}={meta['limit']}"
    cfg = result.expectation_config
    column = cfg.kwargs.get("column")
    value = df.iloc[row][column] if column in df else None
    if meta.get("reason_in") == "arrays":
        r = df.iloc[row]
        return (f"{value}: {r['feature_frames']} feature frames, {r['joint_frames']} joint frames, "
                f"num_frames={r['num_frames']}")  # fmt: skip
    if meta.get("reason_in"):
        return f"{column} check: {value}"
    bounds = {k: cfg.kwargs[k] for k in ("min_value", "max_value", "value_set") if cfg.kwargs.get(k) is not None}
    return f"{column}={value!r} fails {cfg.type.removeprefix('movid_')} {bounds}"


def _kept(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """``table``'s rows where ``keep``; the table itself when that is all of them (a filter copies every
    column, a unit's motion arrays included)."""
    return table if keep.all() else table.filter(pa.array(keep))


def _reject_rows(name: str, table: pa.Table, id_col: str, failures, df, ctx: dict) -> np.ndarray:
    """Quarantine the rows of ``table`` that ``failures`` name (the first reason of each row); returns which
    rows stay. ``ctx``: the plausibility config, the source, and the rejects and counters to add to."""
    first: dict[int, tuple[str, str]] = {}
    for meta, rows, result in failures:
        reason = meta.get("reason") or (meta.get("quarantine_reason") if ctx["plaus"].action == "quarantine" else None)
        if reason is None and not meta.get("reason_in"):
            continue
        for r in rows:
            why = df[meta["reason_in"]].iat[r] if meta.get("reason_in") else reason
            first.setdefault(r, (why, _detail(df, r, meta, result)))
    ids = table.column(id_col).to_pylist()
    paths = table.column("source_path").to_pylist() if "source_path" in table.column_names else [None] * len(ids)
    splits = table.column("split").to_pylist()
    counters = ctx["counters"]
    for r, (reason, detail) in sorted(first.items()):
        ctx["rejects"].append(Reject(ids[r], name, "validate", reason, f"{ids[r]}: {detail}", ctx["source"], paths[r],
                                     splits[r]))  # fmt: skip
        counters[f"dropped_{reason}"] += 1
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(first)] = False
    counters[f"{name}_in"] += table.num_rows
    counters[f"{name}_quarantined"] += len(first)
    counters[f"{name}_out"] += int(keep.sum())
    return keep


def _validate_motion(t: pa.Table, suites: dict, ctx: dict) -> tuple[pa.Table, object]:
    """The motion rows kept (with their plausibility flags) and the summary they were judged on."""
    plaus = ctx["plaus"]
    df = motion_summary(t, plaus)
    failures = run_suite("motion", df, suites["motion"])
    if plaus.action != "off":
        failures += _plausibility_failures(df, plaus)  # after the contract: its reasons come first
    keep = _reject_rows("motion", t, "motion_id", failures, df, ctx)
    flags: list[list[str]] = [[] for _ in range(t.num_rows)]
    if plaus.action == "flag":
        for meta, rows, _ in failures:
            if meta.get("flag"):
                for r in rows:
                    flags[r].append(meta["flag"])
    t = t.set_column(t.schema.get_field_index("quality_flags"), t.schema.field("quality_flags"),
                     pa.array([sorted(f) for f in flags], t.schema.field("quality_flags").type))  # fmt: skip
    for f, k in zip(flags, keep, strict=True):
        if k:
            ctx["counters"].update(f"flagged_{x}" for x in f)
    return _kept(t, keep), df


def validate_tables(tables: dict[str, pa.Table], cfg, *, source: str) -> StageResult:
    """Validate a unit's ``motion``, ``video`` and ``instruction`` tables (``cfg``: the BuildConfig).
    Returns the accepted tables (motion rows carry their plausibility flags) and the rejects; counters
    ``<table>_in/_out/_quarantined``, ``dropped_<reason>`` and ``flagged_<flag>``."""
    plaus = cfg.validation.plausibility
    suites = _suites_for(cfg.ingest, cfg.frames, plaus)
    out = dict(tables)
    ctx = {"plaus": plaus, "source": source, "rejects": [], "counters": Counter()}
    motion_before = motion_after = None
    if "motion" in tables and tables["motion"].num_rows:
        out["motion"], df = _validate_motion(tables["motion"], suites, ctx)
        motion_before, motion_after = set(df["motion_id"]), set(out["motion"].column("motion_id").to_pylist())
    video_before = video_after = None
    if "video" in tables and tables["video"].num_rows:
        t = tables["video"]
        df = video_summary(t)
        keep = _reject_rows("video", t, "video_id", run_suite("video", df, suites["video"]), df, ctx)
        out["video"] = _kept(t, keep)
        video_before, video_after = set(df["video_id"]), set(out["video"].column("video_id").to_pylist())
    if "instruction" in tables and tables["instruction"].num_rows:
        t = tables["instruction"]
        df = instruction_summary(t, motion_before, motion_after, video_before, video_after)
        keep = _reject_rows("instruction", t, "sample_id", run_suite("instruction", df, suites["instruction"]), df, ctx)
        out["instruction"] = _kept(t, keep)
    return StageResult(tables=out, rejects=ctx["rejects"], counters=ctx["counters"])
