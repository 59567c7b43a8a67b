"""The ``quarantine`` table: one rejected record with the stage that rejected it and why.

Every input record ends in an output table or here; ``reason`` is a short stable code (counted in the
manifest as ``dropped_<reason>``), ``detail`` the human explanation.

Record ids, details and source paths often carry user data (a caption line, a metadata row, an id from a
split file), so a ``Reject`` stores them sanitised: control and other unprintable characters escaped, and
each capped in length (``excerpt``). A quarantine row can quote a few words of a bad record, never a whole
file, a 10 MB line, or bytes that break a terminal.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa

__all__ = ["EXCERPT_CHARS", "QUARANTINE_SCHEMA", "Reject", "excerpt", "rejects_table"]

EXCERPT_CHARS = 80  # what a detail quotes of one piece of user data
_ID_CHARS, _PATH_CHARS, _DETAIL_CHARS = 200, 300, 600  # caps on a whole quarantine field
_ELLIPSIS = "…"

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("table", pa.string(), nullable=False),  # the table the record was headed for
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # source kind
        pa.field("source_path", pa.string()),  # relative to the source root
        pa.field("split", pa.string()),
        pa.field("unit_id", pa.string()),  # the work unit, for requeueing
    ]
)


def excerpt(value: str | bytes, limit: int = EXCERPT_CHARS) -> str:
    """``value`` as a short, printable excerpt: bytes decoded as UTF-8 (bad bytes as ``\\xNN``), every
    unprintable character (controls, line and paragraph separators, format characters such as a BOM or a
    bidi override) escaped, and the text cut to ``limit`` characters with a trailing ``…``. Idempotent: an
    excerpt's excerpt is itself, so a row read back and stored again keeps its text."""
    if isinstance(value, bytes):
        value = value[: 4 * limit + 4].decode("utf-8", errors="backslashreplace")
    elif not isinstance(value, str):
        value = str(value)
    if len(value) <= limit and value.isprintable():  # the usual case: nothing to do
        return value
    out, n = [], 0
    for ch in value[: limit + 1]:
        piece = ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
        out.append(piece)
        n += len(piece)
        if n > limit:
            break
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


@dataclass(frozen=True)
class Reject:
    record_id: str
    table: str
    stage: str
    reason: str
    detail: str
    source: str
    source_path: str | None = None
    split: str | None = None
    unit_id: str | None = None

    def __post_init__(self):
        # (frozen: the sanitised values are set through object.__setattr__, once, at construction)
        for name, limit in (("record_id", _ID_CHARS), ("detail", _DETAIL_CHARS), ("source_path", _PATH_CHARS)):
            value = getattr(self, name)
            if value is not None:
                clean = excerpt(value, limit)
                if clean is not value:
                    object.__setattr__(self, name, clean)


def rejects_table(rejects: list[Reject]) -> pa.Table:
    return pa.Table.from_pylist([asdict(r) for r in rejects], schema=QUARANTINE_SCHEMA)
