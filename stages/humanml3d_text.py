"""Parsing of HumanML3D caption files (``texts/ID.txt``): one caption a line,
``caption#word/POS word/POS …#start#end`` with start/end in seconds; ``0.0#0.0`` or NaN = the whole clip.

Caption text is normalised here, for every source (video metadata captions go through ``clean_caption``
too), so no BOM, NUL, CR or other control character reaches a conversation:

- a UTF-8 BOM is removed (at the start of a file, where editors put it, and anywhere else);
- line endings: CRLF and a bare CR (old Mac files) end a line, as LF does;
- tab, vertical tab, form feed and the Unicode line/paragraph separators become a space;
- any other control character (NUL, ESC, DEL, the C1 range…) quarantines the line as
  ``control_characters``: such bytes mean a binary or corrupted file, not text, and deleting them silently
  could glue words together or hide what the line really was;
- a caption longer than ``ingest.max_caption_chars`` is ``caption_too_long`` (a 10 MB line never reaches the
  instruction table or an LLM prompt).

Details quote at most a short, escaped excerpt of a line (``schemas.quarantine.excerpt``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from schemas.quarantine import excerpt

__all__ = ["Caption", "CaptionError", "clean_caption", "parse_caption_line", "split_caption_lines"]

BOM = "\ufeff"
_SPACES = re.compile("[\t\v\f\u2028\u2029\x85]")  # whitespace that is not a line break inside a caption
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x84\x86-\x9f]")  # every other C0/C1 control, DEL
_LINE_OVERHEAD = 6  # a line is caption#tokens#start#end; its tokens field runs ~2-3x the caption


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
    """Lines of a caption file (a leading BOM dropped; LF, CRLF or a bare CR ends a line); a final line
    break does not make an extra (empty) line."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def clean_caption(text: str, max_chars: int | None = None, *, single_line: bool = False) -> str:
    """``text`` normalised (see the module docstring), or :class:`CaptionError`. ``single_line``: a caption
    given as a string of its own (video metadata), where line breaks become spaces as well."""
    if max_chars is not None and len(text) > _LINE_OVERHEAD * max_chars:  # before any scan of a 10 MB string
        raise CaptionError("caption_too_long", f"{len(text):,} characters; ingest.max_caption_chars is {max_chars}")
    if not text.isprintable():  # (the common case, a plain caption, costs this one C-speed scan)
        text = text.replace(BOM, "")
        if single_line:
            text = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
        text = _SPACES.sub(" ", text)
        bad = _CONTROL.search(text)
        if bad:
            raise CaptionError("control_characters", f"control character {bad.group()!r} at {bad.start()}: "
                               f"'{excerpt(text)}'")  # fmt: skip
    if max_chars is not None and len(text.strip()) > max_chars:
        raise CaptionError("caption_too_long", f"{len(text.strip()):,} characters; ingest.max_caption_chars is {max_chars}")
    return text


def parse_caption_line(raw: bytes, allow_plain: bool = False, max_chars: int | None = None) -> Caption:
    """Parse one line; raise :class:`CaptionError` with a stable reason code when it is unusable.
    ``allow_plain`` takes a line with no ``#`` fields as a whole-clip caption without tokens (the plain
    sentences of Motion-X's semantic labels). ``max_chars`` caps the caption text."""
    if max_chars is not None and len(raw) > 4 * _LINE_OVERHEAD * max_chars:  # not even decoded (UTF-8: <= 4 B/char)
        raise CaptionError("caption_too_long", f"a line of {len(raw):,} bytes; ingest.max_caption_chars is {max_chars}")
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaptionError("non_utf8_caption", f"byte {exc.start} is not UTF-8") from None
    line = clean_caption(line, None)
    if not line.strip():
        raise CaptionError("empty_caption", "the line is empty")
    parts = line.rsplit("#", 3)
    if allow_plain and len(parts) == 1:
        return Caption(_capped(line.strip(), max_chars), (), 0.0, 0.0)
    if len(parts) != 4:
        raise CaptionError("malformed_caption", f"expected caption#tokens#start#end, got '{excerpt(line)}'")
    text, token_field, start_s, end_s = parts
    text = _capped(text.strip(), max_chars)
    if not text:
        raise CaptionError("empty_caption", "the caption text is empty")
    tokens = tuple(token_field.split())
    if not tokens:
        raise CaptionError("malformed_caption", "no word/POS tokens")
    bad = next((t for t in tokens if "/" not in t.strip("/")), None)
    if bad is not None:
        raise CaptionError("malformed_caption", f"token '{excerpt(bad)}' is not word/POS")
    try:
        start, end = float(start_s), float(end_s)
    except ValueError:
        raise CaptionError("malformed_caption", f"start/end '{excerpt(start_s, 30)}'/'{excerpt(end_s, 30)}' are not "
                           "numbers") from None  # fmt: skip
    if math.isnan(start) or math.isnan(end):
        start = end = 0.0  # HumanML3D writes NaN for "the whole clip"
    if math.isinf(start) or math.isinf(end):
        raise CaptionError("invalid_span", f"span {start_s}..{end_s} is infinite")
    if not (start == 0.0 and end == 0.0) and (start < 0 or end <= start):
        raise CaptionError("invalid_span", f"span {start:g}s..{end:g}s is empty or negative")
    return Caption(text, tokens, start, end)


def _capped(text: str, max_chars: int | None) -> str:
    if max_chars is not None and len(text) > max_chars:
        raise CaptionError("caption_too_long", f"{len(text):,} characters; ingest.max_caption_chars is {max_chars}")
    return text
