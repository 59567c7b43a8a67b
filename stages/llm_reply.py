"""What an OpenAI-compatible server sends back, as untrusted input: :class:`Redactor` (every trace of the
credentials we send removed before a reply is quoted), :func:`parse_completion` (a chat completion's content,
model and finish reason, or :class:`BadReply` with the quarantine reason), :func:`retry_after`, the usage
figures, and :class:`AnswerResult` (a request's outcome). No network here: the client (``stages/llm_client.py``) hands the bytes over."""

from __future__ import annotations

import base64
import email.utils
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, quote_plus

from schemas.quarantine import excerpt

__all__ = ["MODEL_CHARS", "QUOTE_CHARS", "REDACTED", "RETRY_STATUS", "AnswerResult", "BadReply", "Redactor", "json_type",
           "parse_completion", "retry_after", "token_count"]  # fmt: skip

REDACTED = "[REDACTED]"
QUOTE_CHARS = 200  # of a server's text, quoted in a quarantine detail or a log line
MODEL_CHARS = 200  # a reply's "model" longer than this is not a model name
RETRY_STATUS = (408, 409)  # besides 429 and 5xx: a timeout and a conflict on the server's side


@dataclass
class AnswerResult:
    payload: dict | None
    error: str | None = None  # quarantine reason
    detail: str = ""
    model: str | None = None
    usage: Counter = field(default_factory=Counter)


class Redactor:
    """Removes every trace of some secrets (the API key, the values of the credential headers we send) from
    text a server sent back, before it is stored or logged: each secret as sent, URL-encoded, and
    base64-encoded (at each of base64's three alignments, so it is found inside a longer encoded header too),
    and any piece of one at least ``WINDOW`` characters long — a server that echoes a header cut short, or a
    detail cut at a length limit, leaves no usable part of a key. Each trace becomes ``[REDACTED]``."""

    WINDOW = 12

    def __init__(self, secrets):
        forms: set[str] = set()
        for secret in filter(None, secrets):
            forms |= {secret, quote(secret, safe=""), quote_plus(secret)}
            raw = secret.encode()
            for pad in range(3):  # the characters of an encoding that depend on the secret's bytes alone
                start, end = (8 * pad + 5) // 6, (8 * pad + 8 * len(raw)) // 6
                for encode in (base64.b64encode, base64.urlsafe_b64encode):
                    forms.add(encode(b"\0" * pad + raw).decode()[start:end])
        w = self.WINDOW
        self.short = sorted((f for f in forms if 0 < len(f) < w), key=len, reverse=True)
        self.pieces = {f[i : i + w] for f in forms if len(f) >= w for i in range(len(f) - w + 1)}
        # for leaks(): aligned chunks of the secrets as sent; any piece of 2·WINDOW-1 characters holds one
        plain = {f for s in filter(None, secrets) for f in (s, quote(s, safe=""))}
        self.chunks = {f[i : i + w] for f in plain if len(f) >= w for i in range(0, len(f) - w + 1, w)}
        self.chunks |= {f for f in plain if len(f) < w}
        self.longest = max(map(len, forms), default=0)

    def __call__(self, text: str, upto: int | None = None) -> str:
        """``text`` with every trace of the secrets replaced by ``[REDACTED]``; with ``upto``, only the part
        before that position (a trace that starts before it and runs past it is redacted whole)."""
        upto = len(text) if upto is None else upto
        if not text or not (self.pieces or self.short):
            return text[:upto]
        w, marked = self.WINDOW, bytearray(len(text))
        for i in range(len(text) - w + 1):
            if text[i : i + w] in self.pieces:
                marked[i : i + w] = b"\1" * w
        for form in self.short:
            start = text.find(form)
            while start >= 0:
                marked[start : start + len(form)] = b"\1" * len(form)
                start = text.find(form, start + 1)
        if not any(marked):
            return text[:upto]
        out, i = [], 0
        while i < upto:
            j = i
            while j < len(text) and marked[j] == marked[i]:
                j += 1
            out.append(REDACTED if marked[i] else text[i : min(j, upto)])
            i = j
        return "".join(out)

    def quote(self, value, limit: int = QUOTE_CHARS) -> str:
        """A short, printable, redacted excerpt of ``value`` (anything a server sent: text, bytes, parsed
        JSON) for a detail or a log line. Redacting is a Python loop over the text, so a long text is cut
        first — at a margin past ``limit`` — and what lies within one secret's length of that cut, where a
        secret cut in two could hide, is dropped; the excerpt is cut to ``limit`` after redaction only."""
        keep = 2 * limit + self.longest  # characters looked at
        if isinstance(value, bytes):  # (at most 4 bytes a character: this prefix decodes to >= keep characters)
            text = value[: 4 * keep].decode("utf-8", "backslashreplace")
        else:
            text = value if isinstance(value, str) else repr(value)
        cut = len(text) > keep
        return excerpt(self(text[:keep], keep - self.longest if cut else None), limit)

    def leaks(self, text: str) -> bool:
        """Whether ``text`` holds a secret as sent (or a piece of 2·WINDOW-1 characters of one): a fast check
        (a few substring searches) for the hot path, where every answer is looked at."""
        return any(chunk in text for chunk in self.chunks)


class BadReply(Exception):
    """A request that got no usable completion: its quarantine reason, a detail (not yet redacted), whether
    another attempt can help, and how long the server asked us to wait first."""

    def __init__(self, reason: str, detail: str, retry: bool = False, delay: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.retry, self.delay = reason, detail, retry, delay


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for details."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def token_count(value) -> int:
    """A usage figure as a count: a non-negative whole number, else 0 (a server's usage is not trusted to
    be numbers at all; a garbage figure must neither abort the build nor poison the build's cost)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return 0
    return int(value) if 0 <= value < 2**53 else 0


def retry_after(response, cap: float) -> float | None:
    """The seconds a response asks us to wait (``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP
    date), at most ``cap`` (annotator.backoff_max_s): a server asking for an hour gets ``cap``. None when
    it asks nothing usable — a negative, NaN or infinite figure or garbage — and the usual backoff applies."""
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            seconds = max(0.0, (when - datetime.now(UTC)).total_seconds())
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, cap)
    return None


def parse_completion(raw: bytes, kind: str, usage: Counter, redact: Redactor,
                     default_model: str) -> tuple[str, str, str | None]:  # fmt: skip
    """(content, model, finish_reason) of a chat-completion body (``model``: ``default_model`` unless the reply
    names a plausible one); raises ``BadReply`` for anything else.
    The body is parsed whatever its Content-Type says (a valid completion labelled text/html is one);
    a body that is not JSON at all (a proxy's HTML page, an empty or cut-off body) may be transient."""
    try:
        reply = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadReply("malformed_response", f"the body ({kind}, {len(raw)} bytes) is not JSON: "
                        f"{redact.quote(raw)!r}", retry=True) from None  # fmt: skip
    if not isinstance(reply, dict):
        raise BadReply("malformed_response", f"the body is {json_type(reply)}, not a chat completion object")
    error = reply.get("error")
    if error:  # some gateways answer 200 with an error object
        code = error.get("code", error.get("status")) if isinstance(error, dict) else None
        code = int(code) if isinstance(code, int | str) and str(code).isdigit() and len(str(code)) < 4 else None
        transient = code is not None and (code in (*RETRY_STATUS, 429) or code >= 500)
        raise BadReply("api_unavailable" if transient else "api_error", "HTTP 200 with an error: "
                        f"{redact.quote(error)}", retry=transient)  # fmt: skip
    used = reply.get("usage")
    if isinstance(used, dict):
        usage["prompt_tokens"] += token_count(used.get("prompt_tokens"))
        usage["completion_tokens"] += token_count(used.get("completion_tokens"))
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadReply("malformed_response", f"choices is {json_type(choices) if choices != [] else 'empty'}, "
                        "not a list of choices")  # fmt: skip
    choice = choices[0]
    if not isinstance(choice, dict):
        raise BadReply("malformed_response", f"choices[0] is {json_type(choice)}, not an object")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise BadReply("malformed_response", f"choices[0].message is {json_type(message)}, not an object"
                        if "message" in choice else "choices[0] has no message")  # fmt: skip
    content = message.get("content")
    if content is None and isinstance(message.get("refusal"), str):  # structured outputs' refusal
        raise BadReply("model_refused", f"the model refused: {redact.quote(message['refusal'])!r}")
    if not isinstance(content, str):
        raise BadReply("malformed_response", f"choices[0].message.content is {json_type(content)}, not a string")
    model = reply.get("model")
    # the model name goes into every row it annotated: a name, not a payload nor an echoed header
    if not (isinstance(model, str) and 0 < len(model) <= MODEL_CHARS and model.isprintable()
            and redact(model) == model):  # fmt: skip
        model = default_model
    finish = choice.get("finish_reason")
    return content, model, finish if isinstance(finish, str) else None
