"""Typed planned records: what the planner reads of a source's index or metadata row, handed to the unit
that ingests it. Sources listed by id alone (humanml3d, motionx) need no row; an AMASS index row and a video
metadata row carry their fields here, in one place, instead of positional tuples."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pyarrow as pa

__all__ = ["AmassRow", "VideoRow", "rows_table"]


@dataclass(frozen=True)
class AmassRow:
    """A row of HumanML3D's index.csv: a clip of an AMASS file and its mirror (``M`` + new_name), each with
    its split (None: that twin is in no split, so it is not built)."""

    new_name: str
    source_path: str
    start_frame: int
    end_frame: int
    split: str | None
    m_split: str | None

    def record_ids(self) -> tuple[str, ...]:
        """The ids this row builds: the clip and its mirror, those that have a split."""
        return tuple(x for x, s in ((self.new_name, self.split), ("M" + self.new_name, self.m_split)) if s)

    def record_splits(self) -> tuple[str, ...]:
        return tuple(s for s in (self.split, self.m_split) if s)


@dataclass(frozen=True)
class VideoRow:
    """A video metadata row, checked: the file, its captions and split, the segment to keep, and the motion
    it shows (a planned motion id with its frame count, or per-frame SMPL-X parameters when ``smpl``)."""

    video_id: str
    path: str
    captions: tuple[str, ...]
    split: str
    start: float | None
    end: float | None
    offset: float
    motion_id: str | None
    motion_frames: int | None
    smpl: str | None

    def record_ids(self) -> tuple[str, ...]:
        return (self.video_id,)


def as_tuple(row) -> tuple:
    """The row's fields in order (not ``dataclasses.astuple``, which deep-copies): what the unit id hashes."""
    return tuple(getattr(row, f.name) for f in fields(row))


def rows_table(rows) -> pa.Table:
    """The rows as an Arrow batch, a column per field (tuples of captions as lists)."""
    names = [f.name for f in fields(rows[0])]
    cols = {n: [getattr(r, n) for r in rows] for n in names}
    for n in names:
        if cols[n] and isinstance(cols[n][0], tuple):
            cols[n] = [list(v) for v in cols[n]]
    return pa.table(cols)
