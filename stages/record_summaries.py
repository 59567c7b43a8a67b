"""Record summaries: each table of a unit as one row per record of plain columns (frame counts, finiteness,
caption spans, conversation shape, links between tables, plausibility measures), which the record-level
expectation suites of ``stages.validate`` check."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.instruction import MOTION_PLACEHOLDER, VIDEO_PLACEHOLDER
from schemas.motion import FEATURE_DIM, NUM_JOINTS
from stages.plausibility import flat_frames, one_array, per_clip, plausibility_batch, rows_finite

__all__ = ["instruction_summary", "motion_summary", "video_summary"]

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

    features, f_len = flat_frames(table.column("features"), (FEATURE_DIM,))
    joints, j_len = flat_frames(table.column("joints"), (NUM_JOINTS, 3))
    num_frames = table.column("num_frames").to_numpy().astype(np.int64)
    fps = table.column("fps").to_numpy()
    f_starts, j_starts = np.concatenate([[0], np.cumsum(f_len)]), np.concatenate([[0], np.cumsum(j_len)])
    finite = (per_clip(rows_finite(features).astype(np.float64), f_starts, np.minimum, 1.0) > 0) & (
        per_clip(rows_finite(joints).astype(np.float64), j_starts, np.minimum, 1.0) > 0)  # fmt: skip
    texts = one_array(table.column("texts"))
    n_captions = pc.list_value_length(texts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat_texts = texts.flatten()
    chars = pc.utf8_length(pc.utf8_trim_whitespace(flat_texts.field("caption"))).to_numpy(zero_copy_only=False)
    ordered = pc.and_(pc.greater_equal(flat_texts.field("start"), 0.0),
                      pc.less_equal(flat_texts.field("start"), flat_texts.field("end"))).to_numpy(zero_copy_only=False)  # fmt: skip
    t_starts = np.concatenate([[0], np.cumsum(n_captions)])
    n = table.num_rows
    min_chars = per_clip(chars.astype(np.float64), t_starts, np.minimum, 0.0)
    spans_ordered = per_clip(ordered.astype(np.float64), t_starts, np.minimum, 1.0) > 0
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
    modality = one_array(table.column("modality"))
    conv = one_array(table.column("conversations"))
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
        return per_clip(values.astype(np.float64), offsets, np.minimum, 1.0) > 0

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
        ref = one_array(table.column(col))
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
