"""Motion rows from a loaded clip, shared by every source's ingest: length limits, caption lines,
HumanML3D's time-span sub-clips, and the counters that make a stage's inputs reconcile
(``<kind>_in == <kind>_out + <kind>_quarantined`` for clips, sub-clips and captions).

Caption text is capped here: a clip with more than ``ingest.max_captions`` lines is quarantined whole
(``too_many_captions``, one row rather than one per line), and each line longer than
``ingest.max_caption_chars`` is ``caption_too_long``."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from schemas.motion import motion_table
from schemas.quarantine import Reject, excerpt
from stages import StageResult
from stages.humanml3d_text import Caption, CaptionError, parse_caption_line, split_caption_lines

__all__ = ["ClipRows", "subclip_id"]


def subclip_id(parent_id: str, start_frame: int, end_frame: int) -> str:
    """A sub-clip's id, derived from its parent's: stable, sortable, and unique per span."""
    return f"{parent_id}_{start_frame:04d}_{end_frame:04d}"


class ClipRows:
    """Accumulates one stage's motion rows, rejects and counters."""

    def __init__(self, stage: str, source: str, cfg):
        self.stage, self.source, self.cfg = stage, source, cfg  # cfg: the ingest config section
        self.rows: list[dict] = []
        self.rejects: list[Reject] = []
        self.counts: Counter = Counter()

    def reject(self, record_id: str, reason: str, detail: str, split: str | None, path: str | None = None) -> None:
        self.counts[f"dropped_{reason}"] += 1
        self.rejects.append(Reject(record_id, "motion", self.stage, reason, detail, self.source, path, split))

    def reject_clip(self, motion_id: str, reason: str, detail: str, split: str | None, path: str | None) -> None:
        """A clip that never got as far as its captions (unreadable, broken, …)."""
        self.counts["clips_in"] += 1
        self.counts["clips_quarantined"] += 1
        self.reject(motion_id, reason, detail, split, path)

    def _length_reason(self, n: int, prefix: str = "") -> str | None:
        if n < self.cfg.min_frames:
            return f"{prefix}too_short"
        if n > self.cfg.max_frames:
            return f"{prefix}too_long"
        return None

    def _captions(self, motion_id, split, lines: list[bytes], n_frames: int, text_path: str, plain: bool):
        whole: list[Caption] = []
        spans: dict[tuple[int, int], list[Caption]] = defaultdict(list)
        max_chars = getattr(self.cfg, "max_caption_chars", None)
        for line_no, raw in enumerate(lines, start=1):
            self.counts["captions_in"] += 1
            try:
                cap = parse_caption_line(raw, allow_plain=plain, max_chars=max_chars)
                if not cap.whole_clip:
                    if cap.end * self.cfg.fps >= n_frames + 1:  # as int(end * fps) > n_frames, without int(1e308)
                        raise CaptionError("span_outside_clip", f"span {cap.start:g}s..{cap.end:g}s ends after the "
                                           f"clip's {n_frames} frames")  # fmt: skip
                    start_f, end_f = int(cap.start * self.cfg.fps), int(cap.end * self.cfg.fps)
                    if start_f >= n_frames or end_f > n_frames:
                        raise CaptionError("span_outside_clip", f"span {cap.start:g}s..{cap.end:g}s = frames "
                                           f"[{start_f}, {end_f}) but the clip has {n_frames} frames")  # fmt: skip
            except CaptionError as exc:
                self.reject(f"{motion_id}/texts:{line_no}", exc.reason, exc.detail, split, text_path)
                self.counts["captions_quarantined"] += 1
                continue
            except Exception as exc:  # a line is one record: whatever it does, it is quarantined alone
                self.reject(f"{motion_id}/texts:{line_no}", "read_failed", f"{type(exc).__name__}: {excerpt(str(exc))}",
                            split, text_path)  # fmt: skip
                self.counts["captions_quarantined"] += 1
                continue
            if cap.whole_clip or not self.cfg.subclips:
                whole.append(cap)
            else:
                spans[(start_f, end_f)].append(cap)
        return whole, spans

    def _add_subclips(self, motion_id: str, split: str, features: np.ndarray, joints: np.ndarray, spans: dict,
                      base: dict, frame_offset: int, text_path: str | None) -> None:  # fmt: skip
        """One row per distinct caption time span that makes a clip of an allowed length."""
        for (start_f, end_f), caps in sorted(spans.items()):
            self.counts["subclips_in"] += 1
            sub_id = subclip_id(motion_id, start_f, end_f)
            reason = self._length_reason(end_f - start_f, prefix="subclip_")
            if reason:
                self.reject(sub_id, reason, f"frames [{start_f}, {end_f}) of {motion_id}: {end_f - start_f} frames; "
                            f"limits {self.cfg.min_frames}–{self.cfg.max_frames} ({len(caps)} caption(s))", split,
                            text_path)  # fmt: skip
                self.counts["subclips_quarantined"] += 1
                self.counts["captions_quarantined"] += len(caps)
                continue
            self.rows.append(base | {"motion_id": sub_id, "parent_id": motion_id, "start_frame": frame_offset + start_f,
                                     "end_frame": frame_offset + end_f, "num_frames": end_f - start_f,
                                     "features": features[start_f:end_f], "joints": joints[start_f:end_f],
                                     "texts": [c.as_row() for c in caps]})  # fmt: skip
            self.counts["subclips_out"] += 1
            self.counts["captions_out"] += len(caps)

    def add_clip(self, motion_id: str, split: str, features: np.ndarray, joints: np.ndarray,
                 raw_text: bytes | None, *, source_path: str, text_path: str | None = None,
                 mirror_of: str | None = None, frame_offset: int = 0, plain_captions: bool = False) -> None:  # fmt: skip
        """Rows for one clip: the full clip when a caption covers it (or when the source has no texts:
        ``raw_text=None``), plus one sub-clip per distinct caption time span. ``frame_offset`` places the
        clip in its source sequence (provenance: ``start_frame``/``end_frame``)."""
        self.counts["clips_in"] += 1
        n_frames = len(features)
        if not (np.isfinite(features).all() and np.isfinite(joints).all()):  # e.g. a degenerate (zero-length) bone
            self.reject(motion_id, "non_finite", "NaN/inf in the computed features or joints", split, source_path)
            self.counts["clips_quarantined"] += 1
            return
        reason = self._length_reason(n_frames)
        if reason:
            self.reject(motion_id, reason, f"{n_frames} frames; limits {self.cfg.min_frames}–{self.cfg.max_frames}",
                        split, source_path)  # fmt: skip
            self.counts["clips_quarantined"] += 1
            return
        if raw_text is None:
            whole, spans, full_row = [], {}, True
        else:
            lines = split_caption_lines(raw_text)
            max_captions = getattr(self.cfg, "max_captions", None)
            if max_captions is not None and len(lines) > max_captions:
                self.reject(motion_id, "too_many_captions", f"{text_path} has {len(lines):,} lines; "
                            f"ingest.max_captions is {max_captions}", split, text_path)  # fmt: skip
                self.counts["clips_quarantined"] += 1
                return
            whole, spans = self._captions(motion_id, split, lines, n_frames, text_path, plain_captions)
            full_row = bool(whole)
        base = {"source": self.source, "source_path": source_path, "mirror_of": mirror_of, "split": split,
                "fps": self.cfg.fps}  # fmt: skip
        n_before = len(self.rows)
        if full_row:
            self.rows.append(base | {"motion_id": motion_id, "parent_id": None, "start_frame": frame_offset,
                                     "end_frame": frame_offset + n_frames, "num_frames": n_frames,
                                     "features": features, "joints": joints, "texts": [c.as_row() for c in whole]})  # fmt: skip
            self.counts["captions_out"] += len(whole)
        self._add_subclips(motion_id, split, features, joints, spans, base, frame_offset, text_path)
        if len(self.rows) > n_before:
            self.counts["clips_out"] += 1
            return
        self.counts["clips_quarantined"] += 1
        if not whole and not spans:
            self.reject(motion_id, "no_valid_caption", f"{text_path} has no usable caption line", split, text_path)
        else:
            self.reject(motion_id, "no_usable_motion", "every sub-clip was rejected and no caption covers the "
                        "whole clip", split, source_path)  # fmt: skip

    def result(self) -> StageResult:
        self.counts["rows_out"] = len(self.rows)
        return StageResult(tables={"motion": motion_table(self.rows)}, rejects=self.rejects, counters=self.counts)
