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

import copy as _copy
import hashlib
import io
import json
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import asdict
from functools import cache, lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.instruction import MOTION_PLACEHOLDER, VIDEO_PLACEHOLDER
from schemas.motion import FEATURE_DIM, NUM_JOINTS, PARENTS
from schemas.quarantine import Reject
from stages import StageResult

__all__ = ["SPLITS", "PLAUSIBILITY_FLAGS", "PLAUSIBILITY_LIMITS", "plausibility", "plausibility_batch", "run_suite", "validate_tables"]

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
FEET = (7, 10, 8, 11)  # left ankle, left foot, right ankle, right foot
BONES = [(c, p) for c, p in enumerate(PARENTS) if p >= 0]
assert [c for c, _ in BONES] == list(range(1, NUM_JOINTS))  # every joint but the root ends one bone
_BONE_PARENTS = np.array([p for _, p in BONES])
PLAUSIBILITY_FLAGS = ("joint_speed", "root_teleport", "ground_penetration", "foot_skating", "bone_length_change")
# (measure, its limit in validation.plausibility, flag), most specific first: a clip gets the reason of the
# first limit it breaks (a teleport also moves every joint fast; a stretched bone also moves its end joint fast)
PLAUSIBILITY_LIMITS = (
    ("root_speed", "max_root_speed_m_s", "root_teleport"),
    ("ground_penetration", "max_ground_penetration_m", "ground_penetration"),
    ("bone_length_change", "max_bone_length_change", "bone_length_change"),
    ("joint_speed", "max_joint_speed_m_s", "joint_speed"),
    ("foot_skate_ratio", "max_foot_skate_ratio", "foot_skating"),
)


# --- the engine --------------------------------------------------------------------------------------
def gx_module():
    """great_expectations, imported quietly: its logger (which reports every function it registers at INFO
    while importing) at WARNING. (Analytics are off by GX_ANALYTICS_ENABLED, which the entry points set.)"""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations

    return great_expectations


_PRELOAD: list = []


def preload() -> None:
    """Start importing great-expectations (2-4 s of Python) in a background thread, once per process, so
    it overlaps a unit's ingest (file reads and numpy, which release the GIL) instead of following it."""
    if not _PRELOAD:
        import threading

        _PRELOAD.append(threading.Thread(target=_context, name="movid-gx-import", daemon=True))
        _PRELOAD[0].start()


_CONTEXT_LOCK = __import__("threading").Lock()


def _context():
    """The process's ephemeral great-expectations context (made once; safe from several threads)."""
    with _CONTEXT_LOCK:
        return _make_context()


_SETUP: list[float] = []  # CPU seconds this process spent making its context (the import, mostly), until reported


@lru_cache(maxsize=1)
def _make_context():
    t = time.thread_time()
    gx = gx_module()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    _SETUP.append(time.thread_time() - t)
    return ctx


def engine_ready() -> float:
    """Make sure the process's great-expectations context exists (importing it, or waiting for the preload
    thread to finish); returns the seconds that took here, so a unit can keep them out of its validate
    stage's time: they are the import's, which :func:`setup_seconds` reports in full."""
    t = time.perf_counter()
    _context()
    return time.perf_counter() - t


def setup_seconds() -> float:
    """CPU seconds this process spent importing great-expectations and making its context (~2.3 s), the
    first time it is asked after that; then 0. A unit reports it as a stage of its own: the preload thread's
    import slows whatever it overlaps (ingest, instructions), not the validate stage's timer."""
    return _SETUP.pop() if _SETUP else 0.0


_DEFINITIONS: dict[str, object] = {}


def _digest(value) -> str:
    """A content key: the sha256 of ``value`` as sorted-keys JSON (what is not JSON, by its repr)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def suite_key(name: str, expectations: list) -> str:
    """The key of a suite's validation definition: ``name`` and a hash of each expectation's type, arguments
    and meta — what it checks, never where the list lives in memory (an ``id()`` is reused once its list is
    freed, and a suite would then run with another config's thresholds). The id GX gives an expectation
    when a suite takes it is no part of it."""
    parts = []
    for e in expectations:
        c = e.configuration
        parts.append((c.type, c.kwargs, c.meta))
    return f"{name}:{_digest(parts)}"


def _definition(name: str, key: str, expectations: list):
    """A validation definition (data source, batch, suite) built once per process for ``key``."""
    vd = _DEFINITIONS.get(key)
    if vd is None:
        ctx, gx, n = _context(), gx_module(), len(_DEFINITIONS)
        ds = ctx.data_sources.add_or_update_pandas(f"movid_{n}")
        batch = ds.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_{n}"))
        for e in expectations:
            suite.add_expectation(e)
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_{n}", data=batch, suite=suite))
        _DEFINITIONS[key] = vd
    return vd


def _validate(vd, df, result_format: str):
    """Run ``vd``'s suite on ``df`` with great-expectations' validator, without ``ValidationDefinition.run``'s
    storing of the result in the context (~10 % of a run; a unit's results live in its quarantine rows and
    counters, and no Data Docs are built per unit)."""
    from great_expectations.validator.v1_validator import Validator

    validator = Validator(batch_definition=vd.batch_definition, result_format={"result_format": result_format},
                          batch_parameters={"dataframe": df})  # fmt: skip
    return validator.validate_expectation_suite(vd.suite)


def run_suite(name: str, df, expectations: list) -> list[tuple[dict, list[int], object]]:
    """Run ``expectations`` (great-expectations Expectation objects, each with ``meta``) on the pandas
    DataFrame ``df``. Returns, per failed expectation, its meta, the failing row positions, and the
    result (for reports).

    great-expectations costs ~10 ms per expectation and run whatever the rows, more for the failing
    rows' indices; so the whole suite runs for its verdict only, and each failed expectation runs again
    alone for its rows."""
    if df.empty:
        return []
    key = suite_key(name, expectations)
    df = df.reset_index(drop=True)
    verdict = _validate(_definition(name, key, expectations), df, "BOOLEAN_ONLY")
    if verdict.success:
        return []
    failed = []
    for r in verdict.results:
        if r.success:
            continue
        k = next(i for i, e in enumerate(expectations)
                 if e.meta == r.expectation_config.meta and e.column == r.expectation_config.kwargs.get("column"))  # fmt: skip
        copy = _copy.copy(expectations[k])
        copy.id = None
        alone = _definition(name, f"{key}:{k}", [copy])
        (r,) = _validate(alone, df, "COMPLETE").results
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"validation of {name}: {r.expectation_config.type} raised "
                               f"{r.exception_info.get('exception_message')}")  # fmt: skip
        failed.append((r.expectation_config.meta or {}, list(r.result.get("unexpected_index_list") or []), r))
    return failed


# --- summaries ----------------------------------------------------------------------------------------
def _one_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The column as one array: its only chunk as is (``combine_chunks`` copies even one chunk)."""
    if not isinstance(col, pa.ChunkedArray):
        return col
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _flat(col: pa.ChunkedArray | pa.Array, inner: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """All frames of a list<fixed_size_list…> column as one float32 (F, *inner) array, and each row's frame
    count — no Python loop over rows or frames."""
    arr = _one_array(col)
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = arr.flatten()
    for _ in inner:
        flat = flat.flatten()
    return flat.to_numpy(zero_copy_only=False).reshape(-1, *inner), lengths


def _per_clip(values: np.ndarray, starts: np.ndarray, ufunc, empty: float) -> np.ndarray:
    """``ufunc.reduceat`` over each clip's slice of ``values`` (clips given by start offsets; empty → ``empty``)."""
    out = np.full(len(starts) - 1, empty, dtype=np.float64)
    nonempty = starts[1:] > starts[:-1]
    if nonempty.any() and len(values):
        out[nonempty] = ufunc.reduceat(values, starts[:-1][nonempty])
    return out


def _sq_norm(v: np.ndarray) -> np.ndarray:
    """Squared length of the last axis (of size 3)."""
    return v[..., 0] ** 2 + v[..., 1] ** 2 + v[..., 2] ** 2


_MEASURES = ("joint_speed", "root_speed", "ground_penetration", "foot_skate_ratio", "bone_length_change")
_BLOCK_BYTES = 1 << 20  # passes over a unit's frames go in blocks of ~1 MB: temporaries stay in cache, no fresh pages
_BLOCK_FRAMES = _BLOCK_BYTES // (NUM_JOINTS * 3 * 4)  # frames of float32 joints in a block


def plausibility_batch(joints: np.ndarray, lengths: np.ndarray, fps: np.ndarray, cfg) -> dict[str, np.ndarray]:
    """Per-clip plausibility measures for a batch (joints: all clips' frames, F×22×3 metres, y up, floor
    at 0; ``lengths``: frames per clip): the fastest joint (m/s), the fastest root move over the ground
    (m/s), how far the lowest foot goes below the floor (m), the share of foot-contact frames in which the
    foot slides, and the largest relative change of a bone's length ((max − min) / mean).

    Clips are measured in blocks of about ``_BLOCK_FRAMES`` frames (a longer clip alone): the same
    vectorised pass over ~1 MB instead of a unit's ~9 MB is ~2x faster, since its dozen temporaries
    neither leave the cache nor need new memory pages."""
    lengths = np.asarray(lengths, dtype=np.int64)
    joints = np.asarray(joints, dtype=np.float32)
    fps = np.asarray(fps)
    n = len(lengths)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    # block boundaries (clip indices): a new block starts where the frames since the last one would pass the size
    cuts, first = [0], 0
    for i in range(1, n):
        if starts[i + 1] - starts[first] > _BLOCK_FRAMES:
            cuts.append(i)
            first = i
    cuts.append(n)
    parts = [_plausibility_block(joints[starts[a]:starts[b]], lengths[a:b], fps[a:b], cfg)
             for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]  # fmt: skip
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in _MEASURES}


def _plausibility_block(joints: np.ndarray, lengths: np.ndarray, fps: np.ndarray, cfg) -> dict[str, np.ndarray]:
    n = len(lengths)
    joints = np.asarray(joints, dtype=np.float32)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    # frame-to-frame steps within each clip: step k is frame k+1 − frame k; the last frame of a clip has none
    step = np.zeros_like(joints)
    if len(joints) > 1:
        np.subtract(joints[1:], joints[:-1], out=step[:-1])
    last = starts[1:][lengths > 0] - 1
    step[last] = 0.0
    clip_fps = np.repeat(fps.astype(np.float32), lengths)
    # float32, and squared norms as a sum of the three squared components (3-4x faster than einsum or
    # .sum(-1) over an axis of 3); the square root after the max
    joint_speed = np.sqrt(_sq_norm(step).max(-1)) * clip_fps
    root_speed = np.hypot(step[:, 0, 0], step[:, 0, 2]) * clip_fps
    feet_y = joints[:, FEET, 1]
    low = feet_y < cfg.contact_height_m
    contact = np.zeros_like(low)
    if len(joints) > 1:
        contact[:-1] = low[:-1] & low[1:]
    contact[last] = False
    sliding = contact & (np.hypot(step[:, FEET, 0], step[:, FEET, 2]) * clip_fps[:, None] > cfg.skate_speed_m_s)
    n_contact = _per_clip(contact.sum(-1).astype(np.float64), starts, np.add, 0.0)
    n_sliding = _per_clip(sliding.sum(-1).astype(np.float64), starts, np.add, 0.0)
    # bone vectors: joints 1..21 (a slice) minus their parents (one take of whole joints, 2.5x faster than
    # gathering single coordinates)
    ends = np.take(joints, _BONE_PARENTS, axis=1)
    np.subtract(joints[:, 1:], ends, out=ends)
    bones = np.sqrt(_sq_norm(ends)).astype(np.float64)  # F × bones
    mean = np.zeros((n, bones.shape[1]))
    nonempty = lengths > 0
    if nonempty.any():
        mean[nonempty] = np.add.reduceat(bones, starts[:-1][nonempty], axis=0) / lengths[nonempty, None]
        spread = np.zeros_like(mean)
        spread[nonempty] = (np.maximum.reduceat(bones, starts[:-1][nonempty], axis=0)
                            - np.minimum.reduceat(bones, starts[:-1][nonempty], axis=0))  # fmt: skip
    else:
        spread = mean
    return {
        "joint_speed": _per_clip(joint_speed, starts, np.maximum, 0.0),
        "root_speed": _per_clip(root_speed, starts, np.maximum, 0.0),
        "ground_penetration": np.maximum(0.0, -_per_clip(feet_y.min(-1), starts, np.minimum, 0.0)),
        "foot_skate_ratio": np.divide(n_sliding, n_contact, out=np.zeros(n), where=n_contact > 0),
        "bone_length_change": (spread / np.maximum(mean, 1e-6)).max(-1) if n else np.zeros(0),
    }


def _rows_finite(values: np.ndarray) -> np.ndarray:
    """Per frame (first axis): every value finite — in blocks of ``_BLOCK_BYTES``, like the plausibility pass."""
    flat = values.reshape(len(values), -1)
    out = np.empty(len(flat), dtype=bool)
    rows = max(1, _BLOCK_BYTES // max(1, flat.shape[1] * flat.itemsize))
    for i in range(0, len(flat), rows):
        np.isfinite(flat[i:i + rows]).all(-1, out=out[i:i + rows])
    return out


def _first_problem(n: int, checks: list[tuple[np.ndarray, str]]) -> np.ndarray:
    """Per row: ``"ok"``, or the reason of the first of ``checks`` ((passes, reason) in order) it fails.
    Related checks share one categorical column, so one expectation covers them: great-expectations'
    cost is per expectation and run (~4-5 ms), not per row."""
    out = np.full(n, "ok", dtype=object)
    for passes, reason in reversed(checks):
        out[~np.asarray(passes, dtype=bool)] = reason
    return out


def motion_summary(table: pa.Table, plaus_cfg):
    import pandas as pd

    features, f_len = _flat(table.column("features"), (FEATURE_DIM,))
    joints, j_len = _flat(table.column("joints"), (NUM_JOINTS, 3))
    num_frames = table.column("num_frames").to_numpy().astype(np.int64)
    fps = table.column("fps").to_numpy()
    f_starts, j_starts = np.concatenate([[0], np.cumsum(f_len)]), np.concatenate([[0], np.cumsum(j_len)])
    finite = (_per_clip(_rows_finite(features).astype(np.float64), f_starts, np.minimum, 1.0) > 0) & (
        _per_clip(_rows_finite(joints).astype(np.float64), j_starts, np.minimum, 1.0) > 0)  # fmt: skip
    texts = _one_array(table.column("texts"))
    n_captions = pc.list_value_length(texts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat_texts = texts.flatten()
    chars = pc.utf8_length(pc.utf8_trim_whitespace(flat_texts.field("caption"))).to_numpy(zero_copy_only=False)
    ordered = pc.and_(pc.greater_equal(flat_texts.field("start"), 0.0),
                      pc.less_equal(flat_texts.field("start"), flat_texts.field("end"))).to_numpy(zero_copy_only=False)  # fmt: skip
    t_starts = np.concatenate([[0], np.cumsum(n_captions)])
    n = table.num_rows
    min_chars = _per_clip(chars.astype(np.float64), t_starts, np.minimum, 0.0)
    spans_ordered = _per_clip(ordered.astype(np.float64), t_starts, np.minimum, 1.0) > 0
    df = pd.DataFrame({
        "motion_id": table.column("motion_id").to_pylist(),
        # 263-d features and 22×3 joints of num_frames frames each, then no NaN/inf
        "arrays": _first_problem(n, [((f_len == j_len) & (f_len == num_frames), "shape_mismatch"),
                                     (finite, "non_finite")]),
        "num_frames": num_frames,
        "fps": fps.astype(np.float64),
        "captions": _first_problem(n, [(n_captions >= 1, "no_caption"), (min_chars >= 1, "empty_caption"),
                                       (spans_ordered, "invalid_span")]),
        "feature_frames": f_len, "joint_frames": j_len,  # (for a shape_mismatch's detail)
    })  # fmt: skip
    if plaus_cfg.action != "off":
        ok = finite & (f_len == j_len)
        usable = joints if ok.all() else np.where(np.repeat(ok, j_len)[:, None, None], joints, 0.0)
        measures = plausibility_batch(usable, j_len, fps, plaus_cfg)
        for k, v in measures.items():
            df[k] = np.where(ok, v, 0.0)  # a clip with NaNs fails as non_finite, not here
    df["split"] = table.column("split").to_pylist()
    return df


def plausibility(joints: np.ndarray, fps: float, cfg) -> dict[str, float]:
    """The plausibility measures of one clip (T×22×3); see :func:`plausibility_batch`."""
    m = plausibility_batch(np.asarray(joints, np.float32), np.array([len(joints)]), np.array([fps]), cfg)
    return {k: float(v[0]) for k, v in m.items()}


def _jpeg_ok(data: bytes | None) -> bool:
    from PIL import Image

    if not data:
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # a full decode: truncated or corrupt data fails here
            return im.format == "JPEG"
    except Exception:  # noqa: BLE001 - any decoder complaint means not decodable
        return False


def video_summary(table: pa.Table):
    import pandas as pd

    frames = table.column("frames").to_pylist()
    ts = table.column("frame_timestamps").to_pylist()
    idx = table.column("frame_indices").to_pylist()
    n = table.column("num_frames").to_pylist()
    return pd.DataFrame({
        "video_id": table.column("video_id").to_pylist(),
        "split": table.column("split").to_pylist(),
        "fps": table.column("fps").to_pylist(),
        "width": table.column("width").to_pylist(),
        "height": table.column("height").to_pylist(),
        "n_sampled": [len(f) for f in frames],
        "lists_match": [len(f) == len(t) == len(k) for f, t, k in zip(frames, ts, idx, strict=True)],
        "frames_decodable": [all(_jpeg_ok(b) for b in f) for f in frames],
        "timestamps_increasing": [bool(np.all(np.diff(t) > 0)) for t in ts],
        "indices_in_range": [all(0 <= k < total for k in ks) for ks, total in zip(idx, n, strict=True)],
    })  # fmt: skip


def instruction_summary(table: pa.Table, motion_ids: set | None, kept_motions: set | None,
                        video_ids: set | None, kept_videos: set | None):  # fmt: skip
    """``motion_ids``: the ids of the unit's motion table before validation, ``kept_motions`` after
    (None: no motion table in this unit); likewise for videos. A reference to a record of another unit
    is checked at commit."""
    import pandas as pd

    # vectorised over all turns of the unit (pyarrow), no Python loop over conversations
    n = table.num_rows
    modality = _one_array(table.column("modality"))
    conv = _one_array(table.column("conversations"))
    lengths = pc.list_value_length(conv).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    turns = conv.flatten()
    parent = pc.list_parent_indices(conv).to_numpy(zero_copy_only=False)
    position = np.arange(len(turns)) - offsets[:-1][parent]
    roles = turns.field("role").fill_null("").to_numpy(zero_copy_only=False)
    expected = np.where(position % 2 == 0, "user", "assistant")
    content = turns.field("content")
    filled = pc.utf8_length(pc.utf8_trim_whitespace(content.fill_null(""))).to_numpy(zero_copy_only=False) > 0

    def every(values: np.ndarray) -> np.ndarray:  # per conversation: all of its turns (True when it has none)
        return _per_clip(values.astype(np.float64), offsets, np.minimum, 1.0) > 0

    alternates = (lengths >= 2) & (lengths % 2 == 0) & every(roles == expected)
    first = np.full(n, "", dtype=object)
    starts = position == 0
    first[parent[starts]] = content.fill_null("").to_numpy(zero_copy_only=False)[starts]
    first = pa.array(first, pa.string())
    needs_motion = pc.match_substring(modality, "motion").to_numpy(zero_copy_only=False)
    needs_video = pc.match_substring(modality, "video").to_numpy(zero_copy_only=False)
    placeholder = (~needs_motion | pc.match_substring(first, MOTION_PLACEHOLDER).to_numpy(zero_copy_only=False)) & (
        ~needs_video | pc.match_substring(first, VIDEO_PLACEHOLDER).to_numpy(zero_copy_only=False))  # fmt: skip

    def refs(col: str, needs: np.ndarray, before, after) -> tuple[np.ndarray, np.ndarray]:
        ref = _one_array(table.column(col))
        present = pc.is_valid(ref).to_numpy(zero_copy_only=False)
        if before is None:
            return ~needs | present, np.ones(n, dtype=bool)
        # its record was rejected in this unit → not kept; a record of another unit is checked at commit
        rejected = pa.array(sorted(set(before) - set(after)), pa.string())
        gone = pc.is_in(ref, value_set=rejected).fill_null(False).to_numpy(zero_copy_only=False)
        return ~needs | present, ~gone

    motion_present, motion_kept = refs("motion_id", needs_motion, motion_ids, kept_motions)
    video_present, video_kept = refs("video_id", needs_video, video_ids, kept_videos)
    modality = modality.to_pylist()
    return pd.DataFrame({
        "sample_id": table.column("sample_id").to_pylist(),
        "split": table.column("split").to_pylist(),
        "modality": modality,
        "task": table.column("task").to_pylist(),
        "conversation": _first_problem(n, [(alternates, "malformed_conversation"), (every(filled), "empty_turn"),
                                           (placeholder, "missing_placeholder")]),
        "links": _first_problem(n, [(motion_present, "missing_motion"), (video_present, "missing_video"),
                                    (motion_kept, "parent_quarantined"), (video_kept, "parent_quarantined")]),
    })  # fmt: skip


# --- suites --------------------------------------------------------------------------------------------
_MEMO = "_movid_configuration"


@cache
def expectation_class(name: str):
    """great-expectations' core expectation class ``name``, with its ``configuration`` built once per instance.

    GX rebuilds an expectation's configuration (a pydantic ``dict()`` and a regular expression over the class
    name) every time it is read: ~60 times per expectation and run while it plans the metrics, ~40 % of a
    record-level suite's run (a unit's suite: ~20 ms → ~12 ms). The subclass (GX registers it as
    ``movid_<core type>``) keeps the configuration until one of its fields is set; metrics, checks and
    results are the core expectation's (a test compares the two on failing data)."""
    from great_expectations.compatibility import pydantic

    base = getattr(gx_module().expectations, name)

    def configuration(self):
        memo = getattr(self, _MEMO)
        if memo is None:
            memo = base.configuration.fget(self)
            base.__setattr__(self, _MEMO, memo)
        return memo

    def __setattr__(self, key, value):
        base.__setattr__(self, key, value)
        if key != _MEMO:
            base.__setattr__(self, _MEMO, None)

    namespace = {"__module__": __name__, "__qualname__": f"Movid{name}", "__doc__": base.__doc__,
                 _MEMO: pydantic.PrivateAttr(default=None), "configuration": property(configuration),
                 "__setattr__": __setattr__}  # fmt: skip
    return type(base)(f"Movid{name}", (base,), namespace)  # (GX's metaclass registers it by this name)


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
    key = _digest([asdict(ingest_cfg), asdict(frames_cfg), asdict(plaus_cfg)])
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


def validate_tables(tables: dict[str, pa.Table], cfg, *, source: str) -> StageResult:
    """Validate a unit's ``motion``, ``video`` and ``instruction`` tables (``cfg``: the BuildConfig).
    Returns the accepted tables (motion rows carry their plausibility flags) and the rejects; counters
    ``<table>_in/_out/_quarantined``, ``dropped_<reason>`` and ``flagged_<flag>``."""
    plaus = cfg.validation.plausibility
    suites = _suites_for(cfg.ingest, cfg.frames, plaus)
    out, rejects, counters = dict(tables), [], Counter()

    def reject_rows(name, table, id_col, failures, df):
        first: dict[int, tuple[str, str]] = {}
        for meta, rows, result in failures:
            reason = meta.get("reason") or (meta.get("quarantine_reason") if plaus.action == "quarantine" else None)
            if reason is None and not meta.get("reason_in"):
                continue
            for r in rows:
                why = df[meta["reason_in"]].iat[r] if meta.get("reason_in") else reason
                first.setdefault(r, (why, _detail(df, r, meta, result)))
        ids = table.column(id_col).to_pylist()
        paths = table.column("source_path").to_pylist() if "source_path" in table.column_names else [None] * len(ids)
        splits = table.column("split").to_pylist()
        for r, (reason, detail) in sorted(first.items()):
            rejects.append(Reject(ids[r], name, "validate", reason, f"{ids[r]}: {detail}", source, paths[r], splits[r]))
            counters[f"dropped_{reason}"] += 1
        keep = np.ones(table.num_rows, dtype=bool)
        keep[list(first)] = False
        counters[f"{name}_in"] += table.num_rows
        counters[f"{name}_quarantined"] += len(first)
        counters[f"{name}_out"] += int(keep.sum())
        return keep

    motion_before = motion_after = None
    if "motion" in tables and tables["motion"].num_rows:
        t = tables["motion"]
        df = motion_summary(t, plaus)
        failures = run_suite("motion", df, suites["motion"])
        if plaus.action != "off":
            failures += _plausibility_failures(df, plaus)  # after the contract: its reasons come first
        keep = reject_rows("motion", t, "motion_id", failures, df)
        flags: list[list[str]] = [[] for _ in range(t.num_rows)]
        if plaus.action == "flag":
            for meta, rows, _ in failures:
                if meta.get("flag"):
                    for r in rows:
                        flags[r].append(meta["flag"])
        t = t.set_column(t.schema.get_field_index("quality_flags"), t.schema.field("quality_flags"),
                         pa.array([sorted(f) for f in flags], t.schema.field("quality_flags").type))  # fmt: skip
        out["motion"] = _kept(t, keep)
        for f, k in zip(flags, keep, strict=True):
            if k:
                counters.update(f"flagged_{x}" for x in f)
        motion_before, motion_after = set(df["motion_id"]), set(out["motion"].column("motion_id").to_pylist())
    video_before = video_after = None
    if "video" in tables and tables["video"].num_rows:
        t = tables["video"]
        df = video_summary(t)
        keep = reject_rows("video", t, "video_id", run_suite("video", df, suites["video"]), df)
        out["video"] = _kept(t, keep)
        video_before, video_after = set(df["video_id"]), set(out["video"].column("video_id").to_pylist())
    if "instruction" in tables and tables["instruction"].num_rows:
        t = tables["instruction"]
        df = instruction_summary(t, motion_before, motion_after, video_before, video_after)
        failures = run_suite("instruction", df, suites["instruction"])
        keep = reject_rows("instruction", t, "sample_id", failures, df)
        out["instruction"] = _kept(t, keep)
    return StageResult(tables=out, rejects=rejects, counters=counters)
