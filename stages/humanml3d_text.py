"""Parsing of HumanML3D caption files (``texts/ID.txt``): one caption a line,
``caption#word/POS word/POS …#start#end`` with start/end in seconds; ``0.0#0.0`` or NaN = the whole clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Caption", "CaptionError", "parse_caption_line", "split_caption_lines"]


class CaptionError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Caption:
    caption: str
    tokens: tuple[str, ...]
    start: float  # seconds; NaN-free: whole-clip captions carry 0.0/0.0
    end: float

    @property
    def whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0

    def as_row(self) -> dict:
        return {"caption": self.caption, "tokens": list(self.tokens), "start": self.start, "end": self.end}


def split_caption_lines(raw: bytes) -> list[bytes]:
    """Lines of a caption file; a final newline does not make an extra (empty) line."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def parse_caption_line(raw: bytes, allow_plain: bool = False) -> Caption:
    """Parse one line; raise :class:`CaptionError` with a stable reason code when it is unusable.
    ``allow_plain`` takes a line with no ``#`` fields as a whole-clip caption without tokens (the plain
    sentences of Motion-X's semantic labels)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaptionError("non_utf8_caption", f"byte {exc.start} is not UTF-8") from None
    if not line.strip():
        raise CaptionError("empty_caption", "the line is empty")
    parts = line.rsplit("#", 3)
    if allow_plain and len(parts) == 1:
        return Caption(line.strip(), (), 0.0, 0.0)
    if len(parts) != 4:
        raise CaptionError("malformed_caption", f"expected caption#tokens#start#end, got {line[:80]!r}")
    text, token_field, start_s, end_s = parts
    text = text.strip()
    if not text:
        raise CaptionError("empty_caption", "the caption text is empty")
    tokens = tuple(token_field.split())
    if not tokens:
        raise CaptionError("malformed_caption", "no word/POS tokens")
    bad = next((t for t in tokens if "/" not in t.strip("/")), None)
    if bad is not None:
        raise CaptionError("malformed_caption", f"token {bad!r} is not word/POS")
    try:
        start, end = float(start_s), float(end_s)
    except ValueError:
        raise CaptionError("malformed_caption", f"start/end {start_s!r}/{end_s!r} are not numbers") from None
    if math.isnan(start) or math.isnan(end):
        start = end = 0.0  # HumanML3D writes NaN for "the whole clip"
    if math.isinf(start) or math.isinf(end):
        raise CaptionError("invalid_span", f"span {start_s}..{end_s} is infinite")
    if not (start == 0.0 and end == 0.0) and (start < 0 or end <= start):
        raise CaptionError("invalid_span", f"span {start:g}s..{end:g}s is empty or negative")
    return Caption(text, tokens, start, end)
