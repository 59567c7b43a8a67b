"""Annotator backends. ``offline``: deterministic answers from the kinematic facts, no network.
``openai``: any OpenAI-compatible chat-completions endpoint through the official ``openai`` client —
bounded requests in flight, a rate limit, retries with exponential backoff and jitter on 429/5xx/timeouts
(honouring Retry-After, within the backoff cap), structured output, one re-ask when the answer breaks the
schema, and a response cache that makes a rerun free. The API key is read from the environment and never
logged or stored.

Every reply is untrusted input: a body that is not a chat completion (not JSON, a list, ``choices`` of the
wrong type, no content, an ``error`` object in a 200, more bytes than any answer within ``max_tokens``
needs…) is one record's failure — retried when a retry can help, else quarantined with its reason — never
an aborted build. Whatever a server sends back is redacted (``Redactor``: the key and every credential
header value we send) before it is quoted in a quarantine detail or a log line, and quoted short.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from queue import SimpleQueue
from urllib.parse import quote, quote_plus

import jsonschema_rs

from schemas.quarantine import excerpt
from stages.annotate import (
    ClipRequest,
    caption_schema,
    offline_answer,
    offline_caption,
    offline_video_answer,
    qa_schema,
    video_schema,
)

__all__ = ["AnnotatorError", "AnswerResult", "OfflineAnnotator", "OpenAIAnnotator", "Redactor", "ResponseCache"]

log = logging.getLogger(__name__)


SCHEMAS = {"motion": qa_schema, "caption": caption_schema, "video": video_schema, "video_qa": qa_schema}


@lru_cache(maxsize=8)
def _validator(kind: str, max_items: int):
    """Built once per schema. jsonschema-rs (compiled) rather than the pure-Python jsonschema: validation
    was ~0.8 ms of a worker's CPU per answer, ~15 % of what caps its request rate (bench/annotate.py)."""
    return jsonschema_rs.validator_for(SCHEMAS[kind](max_items))
SYSTEM = "You are a careful annotator of human motion data. You answer with JSON only."
OFFLINE_MODEL = "movid-offline-v1"
CONNECTIONS_PER_CLIENT = 8
REDACTED = "[REDACTED]"
# Bounds on what a reply can make us hold, send or store. A chat completion within max_tokens is a few KB
# (~4 characters a token, JSON escapes at most 6×): a body past the cap is not an answer, and reading it
# whole would let one reply take the worker's memory.
MIN_BODY_BYTES = 4 << 20
ECHO_CHARS = 4000  # of an invalid answer, sent back in the re-ask (a valid answer is far shorter)
PROBLEM_CHARS = 300  # of a validation error's message (it can quote the whole answer)
QUOTE_CHARS = 200  # of a server's text, quoted in a quarantine detail or a log line
DETAIL_CHARS = 500  # of a whole detail
MODEL_CHARS = 200  # a reply's "model" longer than this is not a model name
# The openai client returns the HTTP response unread when a request carries this header (its
# with_streaming_response does the same), so the body can be read with a bound.
_STREAM_HEADER = "X-Stainless-Raw-Response"
_RETRY_STATUS = (408, 409)  # besides 429 and 5xx: a timeout and a conflict on the server's side


class AnnotatorError(RuntimeError):
    """A configuration problem of the annotator (no key, unknown option): stops the build."""


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


class _BadReply(Exception):
    """A request that got no usable completion: its quarantine reason, a detail (not yet redacted), whether
    another attempt can help, and how long the server asked us to wait first."""

    def __init__(self, reason: str, detail: str, retry: bool = False, delay: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.retry, self.delay = reason, detail, retry, delay


def _json_type(value) -> str:
    """The JSON name of a parsed value's type, for details."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _token_count(value) -> int:
    """A usage figure as a count: a non-negative whole number, else 0 (a server's usage is not trusted to
    be numbers at all; a garbage figure must neither abort the build nor poison the build's cost)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return 0
    return int(value) if 0 <= value < 2**53 else 0


def _texts(messages: list[dict]):
    """The text of each message and text part (image parts are bounded by the frames config)."""
    for m in messages:
        if isinstance(m["content"], str):
            yield m["content"]
        else:
            yield from (p.get("text", "") for p in m["content"])


def _prompt_chars(messages: list[dict]) -> int:
    """Characters of text in the messages."""
    return sum(map(len, _texts(messages)))


def _sendable(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (JSON allows ``\\ud800``) cannot be encoded as UTF-8,
    and would make the next request's body or a shard fail to encode."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class OfflineAnnotator:
    name = "offline"

    def __init__(self, qa_per_clip: int, seed: int = 0):
        self.qa_per_clip, self.seed = qa_per_clip, seed
        self.params = {"qa_per_clip": qa_per_clip}

    def answer_all(self, requests: list[ClipRequest], kind: str = "motion") -> list[AnswerResult]:
        if kind in ("video", "video_qa"):  # video_qa: the same QA, from the re-caption and the human captions
            answers = [offline_video_answer(r, self.qa_per_clip, self.seed) for r in requests]
            if kind == "video_qa":
                answers = [{"qa": a["qa"]} for a in answers]
            return [AnswerResult(a, model=OFFLINE_MODEL) for a in answers]
        if kind == "caption":
            return [AnswerResult(offline_caption(r, self.seed), model=OFFLINE_MODEL) for r in requests]
        return [AnswerResult(offline_answer(r, self.qa_per_clip, self.seed), model=OFFLINE_MODEL) for r in requests]


class ResponseCache:
    """One JSON file per key under ``folder`` (sharded by prefix), written atomically: safe with many
    processes and machines on shared storage, and a crash never leaves a half-written entry."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._made: set[Path] = set()
        self._queue: SimpleQueue | None = None

    @staticmethod
    def key(**parts) -> str:
        text = json.dumps(parts, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def _path(self, key: str) -> str:
        return f"{self.folder}/{key[:2]}/{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not os.path.exists(path):  # a stat is cheaper than a failing open
            return None
        try:
            with open(path, "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    @contextmanager
    def writer(self):
        """While open, ``put`` hands entries to a thread that writes them: creating a file costs ~0.6-0.9 ms
        of kernel time on the disks measured, which would otherwise stall the event loop for every answer;
        the thread's syscalls release the GIL and run beside it. Every entry is on disk when this exits."""
        queue: SimpleQueue = SimpleQueue()
        failures: list[BaseException] = []

        def drain():
            while (item := queue.get()) is not None:
                try:
                    self._write(*item)
                except BaseException as exc:  # noqa: BLE001 - reported once the block ends
                    failures.append(exc)

        thread = threading.Thread(target=drain, name="movid-cache-writer", daemon=True)
        thread.start()
        self._queue = queue
        try:
            yield self
        finally:
            self._queue = None
            queue.put(None)
            thread.join()
        if failures:
            raise failures[0]

    def put(self, key: str, value: dict) -> None:
        if self._queue is not None:
            self._queue.put((key, value))
        else:
            self._write(key, value)

    def _write(self, key: str, value: dict) -> None:
        path = self._path(key)
        folder = path[: path.rindex("/")]
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        # Plain os calls: the writer thread shares the GIL with the event loop, so it keeps its Python short.
        tmp = f"{folder}/.{key}.{os.getpid()}.{random.getrandbits(32):08x}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, json.dumps(value, sort_keys=True).encode())
        finally:
            os.close(fd)
        os.replace(tmp, path)


def _httpx():
    """The HTTP library this openai release is built on (httpx2 in 3.x, httpx before)."""
    try:
        import httpx2 as httpx
    except ImportError:
        import httpx
    return httpx


@lru_cache(maxsize=1)
def _ssl_context():
    """The TLS context the client would build (system trust as its HTTP library sets it up), made once:
    building it loads the CA bundle, ~25 ms per client otherwise."""
    return _httpx().create_ssl_context()


def _retry_after(response, cap: float) -> float | None:
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


class _Prefetch:
    """A thread that prepares requests ahead of the workers: messages, cache key and the cache lookup — a
    stat, and a read on a hit: blocking filesystem calls (~0.1 ms on a local disk while the cache writer
    creates files, ~1 ms on NFS) that would otherwise stall the event loop and every request on it. It
    stays at most ``lead`` requests ahead; a request it has not reached yet is prepared by its worker."""

    def __init__(self, requests, prepare, lead: int):
        self.requests, self.prepare, self.lead = requests, prepare, lead
        self.ready: dict[int, tuple] = {}
        self.taken = -1  # the highest index a worker has taken
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="movid-llm-prefetch", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for i, req in enumerate(self.requests):
            while i - self.taken > self.lead and not self.stopped:
                time.sleep(0.002)
            if self.stopped:
                return
            if i > self.taken:  # not taken meanwhile
                try:
                    self.ready[i] = self.prepare(req)
                except Exception:  # noqa: BLE001 - the worker prepares it again and meets the error itself
                    pass

    def take(self, i: int) -> tuple:
        self.taken = i
        got = self.ready.pop(i, None)
        return got if got is not None else self.prepare(self.requests[i])

    def close(self) -> None:
        self.stopped = True
        self.thread.join()


class _Runtime:
    """The process's event loop for LLM requests, in a daemon thread, and the openai clients on it: a Ray
    worker runs many units one after another, and each would otherwise open its connections (TCP, TLS) anew
    and pay a slow first round of requests. Clients are kept per (endpoint, key, timeout, HTTP layer,
    connections); the few most recent are kept open, older ones closed. Fork-aware: a child process gets
    its own."""

    KEEP = 4

    def __init__(self):
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.clients: dict[tuple, list] = {}  # insertion order = least recently used first
        threading.Thread(target=self.loop.run_forever, name="movid-llm-loop", daemon=True).start()

    _current: _Runtime | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> _Runtime:
        with cls._lock:
            if cls._current is None or cls._current.pid != os.getpid():
                cls._current = cls()
                atexit.register(cls._current.close)
            return cls._current

    def run(self, coro):
        """Runs ``coro`` on the loop and waits; an interrupt of the caller cancels it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def clients_for(self, key: tuple, make) -> list:
        """On the loop: the clients for ``key`` (made by ``make()`` the first time)."""
        if key in self.clients:
            self.clients[key] = self.clients.pop(key)  # most recently used
            return self.clients[key]
        self.clients[key] = made = make()
        while len(self.clients) > self.KEEP:
            for client in self.clients.pop(next(iter(self.clients))):
                await client.close()
        return made

    def close(self) -> None:
        """At exit: close every connection (aiohttp warns about sessions left open), then stop the loop."""
        if self.pid != os.getpid() or not self.loop.is_running():
            return

        async def close_all():
            for clients in self.clients.values():
                for client in clients:
                    await client.close()
            self.clients.clear()

        try:
            asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(timeout=5)
        except Exception:  # noqa: BLE001 - best effort while the interpreter exits
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)


class OpenAIAnnotator:
    name = "openai"

    def __init__(self, cfg, prompt_version: str, cache_dir: str | Path, seed: int = 0, limiter=None):
        """``limiter``: an object with ``async wait(tokens)`` (the build's shared rate limit); by default
        an in-process one from ``cfg.requests_per_minute`` / ``cfg.tokens_per_minute``."""
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise AnnotatorError(f"annotator.api_key_env: the environment variable {cfg.api_key_env} is not set")
        if cfg.http_client not in ("aiohttp", "httpx"):
            raise AnnotatorError(f"annotator.http_client: {cfg.http_client!r} is not aiohttp or httpx")
        if cfg.structured_output not in ("json_schema", "json_object", "none"):
            raise AnnotatorError(f"annotator.structured_output: {cfg.structured_output!r} is not json_schema, "
                                 "json_object or none")  # fmt: skip
        self.cfg, self._key, self.prompt_version = cfg, key, prompt_version
        if limiter is None:
            from pipeline.ratelimit import LocalLimiter

            limiter = LocalLimiter(cfg.requests_per_minute, cfg.tokens_per_minute)
        self.limiter = limiter
        self.cache = ResponseCache(cache_dir)
        self.params = {"model": cfg.model, "temperature": cfg.temperature, "max_tokens": cfg.max_tokens,
                       "seed": seed, "structured_output": cfg.structured_output}  # fmt: skip
        # The credential header values the client sends: the key (as "Bearer <key>"), and the organization
        # and project the openai client reads from the environment. The other headers it sends (user agent,
        # platform and retry count) are no secret and stay readable.
        self.redact = Redactor([key, os.environ.get("OPENAI_ORG_ID"), os.environ.get("OPENAI_PROJECT_ID")])
        self.max_body = max(MIN_BODY_BYTES, 64 * cfg.max_tokens)

    def _response_format(self, schema: dict) -> dict | None:
        if self.cfg.structured_output == "json_schema":  # OpenAI structured outputs (vLLM honours it too)
            return {"type": "json_schema", "json_schema": {"name": "movid_answer", "schema": schema, "strict": True}}
        if self.cfg.structured_output == "json_object":  # llama.cpp's server takes the schema this way
            return {"type": "json_object", "schema": schema}
        return None

    def answer_all(self, requests: list[ClipRequest], kind: str = "motion") -> list[AnswerResult]:
        """``kind`` motion: QA; caption: a detailed caption; video: a re-caption and QA from the frames
        (image parts of the request); video_qa: QA from a video's re-caption and captions (text only)."""
        self.schema = SCHEMAS[kind](self.cfg.qa_per_clip)
        self.validator = _validator(kind, self.cfg.qa_per_clip)
        return _Runtime.get().run(self._answer_all(requests)) if requests else []

    def _http_client(self):
        """The official client's HTTP layer: ``aiohttp`` (openai[aiohttp], ``DefaultAioHttpClient``; its C
        parser and connection pool cost ~40 % less CPU per request than httpx's, which caps a worker's
        request rate) or ``httpx`` (the client's default)."""
        import openai

        if self.cfg.http_client == "aiohttp":
            try:
                import aiohttp  # noqa: F401
            except ImportError as exc:
                raise AnnotatorError("annotator.http_client: aiohttp is not installed (pip install 'openai[aiohttp]'), "
                                     "or set annotator.http_client=httpx") from exc  # fmt: skip
            return openai.DefaultAioHttpClient(verify=_ssl_context(), limits=_httpx().Limits(
                max_connections=self.cfg.max_in_flight, max_keepalive_connections=self.cfg.max_in_flight))
        return openai.DefaultAsyncHttpxClient(verify=_ssl_context())

    async def _answer_all(self, requests):
        """Answers in request order. ``max_in_flight`` workers take requests in order (no task per request:
        100k+ clips stay cheap and the first requests go out at once); a prompt asked twice (e.g. mirror
        twins of a symmetric motion) is asked once, and the later askers count a cache hit."""
        import openai

        # httpx: several clients, each with a few connections — on every response its connection pool checks
        # each of its connections for expiry (a syscall apiece), so one pool of 64 connections spent ~a third
        # of a worker's CPU there. aiohttp's pool has no such cost: one client.
        per_client = self.cfg.max_in_flight if self.cfg.http_client == "aiohttp" else CONNECTIONS_PER_CLIENT
        n_clients = max(1, -(-self.cfg.max_in_flight // per_client))
        clients = await _Runtime.get().clients_for(
            (self.cfg.base_url, self._key, self.cfg.timeout_s, self.cfg.http_client, self.cfg.max_in_flight),
            lambda: [openai.AsyncOpenAI(base_url=self.cfg.base_url, api_key=self._key, timeout=self.cfg.timeout_s,
                                        max_retries=0, http_client=self._http_client()) for _ in range(n_clients)])
        out: list[AnswerResult | None] = [None] * len(requests)
        asked: dict[str, int] = {}  # cache key -> the request that asks it
        later: list[tuple[int, int]] = []  # (request, the request whose answer it shares)
        position = iter(range(len(requests)))
        key_of = self.cache_key_function(self.cfg.model, self.prompt_version, self.params, self.schema)

        def prepare(req):
            messages = self.messages_for(req)
            key = key_of(messages)
            return messages, key, self.cache.get(key)

        async def worker(client):
            for i in position:  # shared: each index is taken by one worker, in order
                messages, key, hit = ahead.take(i)
                if key in asked:
                    later.append((i, asked[key]))
                    continue
                asked[key] = i
                if hit is not None:
                    out[i] = AnswerResult(hit["payload"], model=hit["model"], usage=Counter(cache_hits=1))
                else:
                    out[i] = await self._answer(client, self.limiter, key, messages)

        ahead = _Prefetch(requests, prepare, lead=4 * self.cfg.max_in_flight)
        try:
            with self.cache.writer():
                async with asyncio.TaskGroup() as group:  # a failing worker cancels the others
                    for w in range(min(self.cfg.max_in_flight, len(requests))):
                        group.create_task(worker(clients[w % n_clients]))
        except BaseExceptionGroup as group:  # what failed, not the group
            raise group.exceptions[0] from None
        finally:
            ahead.close()
        for i, first in later:  # the first asker carries the usage; the others count as cache hits
            res = out[first]
            out[i] = AnswerResult(res.payload, res.error, res.detail, res.model, Counter(cache_hits=1))
        return out

    @staticmethod
    def messages_for(req: ClipRequest) -> list[dict]:
        """The chat messages; frames become image parts (base64 JPEG data URLs), as vision models take them."""
        if not req.images:
            return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": req.prompt}]
        parts = [{"type": "text", "text": req.prompt}] + [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}
            for jpeg in req.images]  # fmt: skip
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": parts}]

    @staticmethod
    def cache_key(model: str, prompt_version: str, params: dict, messages: list[dict], schema: dict) -> str:
        """The response cache key: model, prompt version, generation parameters, schema and the exact input —
        ``ResponseCache.key`` of those parts."""
        return OpenAIAnnotator.cache_key_function(model, prompt_version, params, schema)(messages)

    @staticmethod
    def cache_key_function(model: str, prompt_version: str, params: dict, schema: dict):
        """``messages -> ResponseCache.key(model=…, prompt_version=…, params=…, messages=…, schema=…)``, with the
        parts that do not change between requests serialised once (the schema's JSON is twice a prompt's)."""
        tail = json.dumps({"model": model, "params": params, "prompt_version": prompt_version, "schema": schema},
                          sort_keys=True, ensure_ascii=False)[1:]  # fmt: skip
        dumps, sha256 = json.dumps, hashlib.sha256

        def key(messages: list[dict]) -> str:  # sorted keys: "messages" comes first
            text = f'{{"messages": {dumps(messages, sort_keys=True, ensure_ascii=False)}, {tail}'
            # (surrogatepass: a prompt holding a lone surrogate still gets a key, and is quarantined unsent)
            return sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

        return key

    def _failed(self, reason: str, detail: str, model: str | None, usage: Counter) -> AnswerResult:
        """A request's failure, logged (at debug: one line per record). Whatever a server sent is already
        quoted in ``detail`` through ``Redactor.quote``; the whole is redacted again (it is short) and cut."""
        detail = excerpt(self.redact(detail), DETAIL_CHARS)
        self._log(logging.DEBUG, f"{reason}: {detail}")
        return AnswerResult(None, reason, detail, model, usage)

    def _log(self, level: int, message: str) -> None:
        """Every log line of the client goes through here: it quotes what servers send."""
        if log.isEnabledFor(level):
            log.log(level, "%s", self.redact(message))

    async def _answer(self, client, limit, key: str, messages: list[dict]) -> AnswerResult:
        """A request not in the cache: asked, validated, re-asked once if invalid, cached."""
        usage: Counter = Counter()
        chars = _prompt_chars(messages)
        if chars > self.cfg.max_prompt_chars:  # never sent: a 10 MB caption is not a 2.6 M-token request
            return self._failed("prompt_too_long", f"the prompt has {chars} characters, over "
                                f"annotator.max_prompt_chars={self.cfg.max_prompt_chars}; not sent", None, usage)  # fmt: skip
        if any(_sendable(t) is not t for t in _texts(messages)):  # no request body can carry it
            return self._failed("invalid_prompt", "the prompt is not valid Unicode (a lone surrogate); not sent",
                                None, usage)  # fmt: skip
        for attempt in range(2):  # the answer, and one re-ask with the validation error
            result = await self._call(client, limit, messages, usage)
            if isinstance(result, AnswerResult):
                return result
            content, model, finish = result
            payload, problem = self._parse_answer(content)
            if problem is None:
                # (an escape can spell a secret too: then the decoded answer is what is searched)
                if self.redact.leaks(content if "\\u" not in content else json.dumps(payload, ensure_ascii=False)):
                    return self._failed("secret_in_answer", "the answer quotes a credential header we sent", model,
                                        usage)  # fmt: skip
                # File creation blocks for ~0.5 ms: off the event loop, so the other requests keep flowing.
                self.cache.put(key, {"payload": payload, "model": model})
                return AnswerResult(payload, model=model, usage=usage)
            if finish == "length":  # cut at max_tokens: a re-ask would be cut the same way
                return self._failed("truncated_answer", f"the answer stopped at annotator.max_tokens={self.cfg.max_tokens}"
                                    f" (finish_reason length): {self.redact.quote(problem)}", model, usage)  # fmt: skip
            if attempt == 0:
                usage["reasks"] += 1
                echo = content if len(content) <= ECHO_CHARS else (
                    f"{content[:ECHO_CHARS]}… [{len(content) - ECHO_CHARS} more characters]")  # fmt: skip
                messages = messages + [{"role": "assistant", "content": _sendable(echo)},
                                       {"role": "user", "content": f"That answer is invalid: "
                                        f"{_sendable(problem[:PROBLEM_CHARS])}. "
                                        "Answer again with JSON only, matching the schema."}]  # fmt: skip
                continue
            return self._failed("invalid_answer", f"{self.redact.quote(problem, PROBLEM_CHARS)}; raw answer: "
                                f"{self.redact.quote(content)!r}", model, usage)  # fmt: skip
        raise AssertionError("unreachable")

    def _parse_answer(self, content: str) -> tuple[object, str | None]:
        """(payload, None) for an answer that is JSON under the schema, else (None, what is wrong: a message
        that can quote the answer, not yet cut nor redacted)."""
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError) as exc:
            return None, f"not JSON ({exc})"
        try:
            self.validator.validate(payload)
        except jsonschema_rs.ValidationError as exc:
            return None, exc.message
        except (ValueError, TypeError, RecursionError) as exc:  # a validator of our own (the judge's) on odd JSON
            return None, f"not a valid answer ({exc})"
        if "\\u" in content:  # an escape can hide a lone surrogate, which no shard can encode
            try:
                json.dumps(payload, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                return None, "not valid Unicode (a lone surrogate escape)"
        else:
            try:
                content.encode("utf-8")
            except UnicodeEncodeError:
                return None, "not valid Unicode (a lone surrogate)"
        return payload, None

    async def _call(self, client, limit, messages, usage):
        """(content, model, finish_reason) of one completion, retrying transient failures; an AnswerResult
        on failure."""
        import openai

        body = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens, "seed": self.params["seed"]}  # fmt: skip
        if (rf := self._response_format(self.schema)) is not None:
            body["response_format"] = rf
        # an upper estimate (an image counted as ~250 tokens)
        images = sum(len(m["content"]) for m in messages if not isinstance(m["content"], str))
        tokens = (_prompt_chars(messages) + 1000 * images) // 4 + self.cfg.max_tokens
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            await limit.wait(tokens)
            usage["requests"] += 1
            try:
                return self._completion(*await self._post(client, body), usage)
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as exc:  # fmt: skip
                status = getattr(exc, "status_code", None)
                said = f": HTTP {status}: {self.redact.quote(str(exc))}" if status else ""
                failure = _BadReply("api_unavailable", f"{type(exc).__name__}{said}", retry=True,
                                    delay=_retry_after(getattr(exc, "response", None), self.cfg.backoff_max_s))  # fmt: skip
            except openai.APIStatusError as exc:  # other 4xx: retrying will not help (but for 408 and 409)
                failure = _BadReply("api_error" if exc.status_code not in _RETRY_STATUS else "api_unavailable",
                                    f"HTTP {exc.status_code}: {self.redact.quote(str(exc))}",
                                    retry=exc.status_code in _RETRY_STATUS,
                                    delay=_retry_after(exc.response, self.cfg.backoff_max_s))  # fmt: skip
            except _BadReply as exc:
                failure = exc
            if not failure.retry:
                return self._failed(failure.reason, failure.detail, None, usage)
            usage["retries"] += 1
            if attempt + 1 == attempts:
                return self._failed(failure.reason, f"gave up after {attempts} attempts; the last: {failure.detail}",
                                    None, usage)  # fmt: skip
            delay = failure.delay
            if delay is None:
                delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
            self._log(logging.DEBUG, f"retrying in {delay:.2f} s after {failure.detail}")
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _post(self, client, body: dict) -> tuple[bytes, str]:
        """(body bytes, content type) of a 2xx reply, read with a bound: past ``max_body`` bytes, or a
        declared Content-Length over it, the reply is refused unread. The client's generic POST (same
        transport, auth and error types as chat.completions.create): the typed method re-walks the
        parameters and builds response objects, ~1.5 ms of client CPU per request, which caps a worker's
        request rate (bench/annotate.py). Non-2xx replies raise the client's status errors."""
        httpx = _httpx()
        try:
            response = await client.post("/chat/completions", cast_to=httpx.Response, body=body,
                                         options={"headers": {_STREAM_HEADER: "stream"}})  # fmt: skip
        except httpx.HTTPError as exc:  # an error status whose body does not decode (its Content-Encoding lies)
            raise _BadReply("api_unavailable", f"reading the reply failed: {type(exc).__name__}: "
                            f"{self.redact.quote(str(exc))}", retry=True) from None  # fmt: skip
        kind = self.redact.quote(response.headers.get("content-type", "no content type").split(";")[0].strip(), 60)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body:
                raise _BadReply("malformed_response", f"the body ({kind}) declares {declared} bytes, over the bound on "
                                f"a reply of {self.max_body} bytes (annotator.max_tokens={self.cfg.max_tokens})")  # fmt: skip
            chunks, size = [], 0
            async with asyncio.timeout(self.cfg.timeout_s):  # a body that trickles in counts against the timeout
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body:
                        raise _BadReply("malformed_response", f"the body ({kind}) runs past the bound on a reply of "
                                        f"{self.max_body} bytes (annotator.max_tokens={self.cfg.max_tokens})")  # fmt: skip
                    chunks.append(chunk)
        except TimeoutError:
            raise _BadReply("api_unavailable", f"the body ({kind}) took over annotator.timeout_s={self.cfg.timeout_s} s",
                            retry=True) from None  # fmt: skip
        except httpx.HTTPError as exc:  # the connection broke mid-body, or a Content-Encoding that does not decode
            raise _BadReply("api_unavailable", f"reading the body failed: {type(exc).__name__}: "
                            f"{self.redact.quote(str(exc))}", retry=True) from None  # fmt: skip
        finally:
            await response.aclose()
        return b"".join(chunks), kind

    def _completion(self, raw: bytes, kind: str, usage: Counter) -> tuple[str, str, str | None]:
        """(content, model, finish_reason) of a chat-completion body; raises ``_BadReply`` for anything else.
        The body is parsed whatever its Content-Type says (a valid completion labelled text/html is one);
        a body that is not JSON at all (a proxy's HTML page, an empty or cut-off body) may be transient."""
        try:
            reply = json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _BadReply("malformed_response", f"the body ({kind}, {len(raw)} bytes) is not JSON: "
                            f"{self.redact.quote(raw)!r}", retry=True) from None  # fmt: skip
        if not isinstance(reply, dict):
            raise _BadReply("malformed_response", f"the body is {_json_type(reply)}, not a chat completion object")
        error = reply.get("error")
        if error:  # some gateways answer 200 with an error object
            code = error.get("code", error.get("status")) if isinstance(error, dict) else None
            code = int(code) if isinstance(code, int | str) and str(code).isdigit() and len(str(code)) < 4 else None
            transient = code is not None and (code in (*_RETRY_STATUS, 429) or code >= 500)
            raise _BadReply("api_unavailable" if transient else "api_error", "HTTP 200 with an error: "
                            f"{self.redact.quote(error)}", retry=transient)  # fmt: skip
        used = reply.get("usage")
        if isinstance(used, dict):
            usage["prompt_tokens"] += _token_count(used.get("prompt_tokens"))
            usage["completion_tokens"] += _token_count(used.get("completion_tokens"))
        choices = reply.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _BadReply("malformed_response", f"choices is {_json_type(choices) if choices != [] else 'empty'}, "
                            "not a list of choices")  # fmt: skip
        choice = choices[0]
        if not isinstance(choice, dict):
            raise _BadReply("malformed_response", f"choices[0] is {_json_type(choice)}, not an object")
        message = choice.get("message")
        if not isinstance(message, dict):
            raise _BadReply("malformed_response", f"choices[0].message is {_json_type(message)}, not an object"
                            if "message" in choice else "choices[0] has no message")  # fmt: skip
        content = message.get("content")
        if content is None and isinstance(message.get("refusal"), str):  # structured outputs' refusal
            raise _BadReply("model_refused", f"the model refused: {self.redact.quote(message['refusal'])!r}")
        if not isinstance(content, str):
            raise _BadReply("malformed_response", f"choices[0].message.content is {_json_type(content)}, not a string")
        model = reply.get("model")
        # the model name goes into every row it annotated: a name, not a payload nor an echoed header
        if not (isinstance(model, str) and 0 < len(model) <= MODEL_CHARS and model.isprintable()
                and self.redact(model) == model):  # fmt: skip
            model = self.cfg.model
        finish = choice.get("finish_reason")
        return content, model, finish if isinstance(finish, str) else None
