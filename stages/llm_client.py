"""Annotator backends. ``offline``: deterministic answers from the kinematic facts, no network.
``openai``: any OpenAI-compatible chat-completions endpoint through the official ``openai`` client —
bounded requests in flight, a rate limit, retries with exponential backoff and jitter on 429/5xx/timeouts
(honouring Retry-After), structured output, one re-ask when the answer breaks the schema, and a response
cache that makes a rerun free. The API key is read from the environment and never logged or stored.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import hashlib
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from queue import SimpleQueue

import jsonschema_rs

from stages.annotate import (
    ClipRequest,
    caption_schema,
    offline_answer,
    offline_caption,
    offline_video_answer,
    qa_schema,
    video_schema,
)

__all__ = ["AnnotatorError", "AnswerResult", "OfflineAnnotator", "OpenAIAnnotator", "ResponseCache"]

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


class AnnotatorError(RuntimeError):
    """A configuration problem of the annotator (no key, unknown option): stops the build."""


@dataclass
class AnswerResult:
    payload: dict | None
    error: str | None = None  # quarantine reason
    detail: str = ""
    model: str | None = None
    usage: Counter = field(default_factory=Counter)


class OfflineAnnotator:
    name = "offline"

    def __init__(self, qa_per_clip: int, seed: int = 0):
        self.qa_per_clip, self.seed = qa_per_clip, seed
        self.params = {"qa_per_clip": qa_per_clip}

    def answer_all(self, requests: list[ClipRequest], kind: str = "motion") -> list[AnswerResult]:
        if kind in ("video", "video_qa"):  # video_qa: the same QA, from the re-caption and the human captions
            answers = [offline_video_answer(r, self.qa_per_clip) for r in requests]
            if kind == "video_qa":
                answers = [{"qa": a["qa"]} for a in answers]
            return [AnswerResult(a, model=OFFLINE_MODEL) for a in answers]
        if kind == "caption":
            return [AnswerResult(offline_caption(r), model=OFFLINE_MODEL) for r in requests]
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
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

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


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
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
            return sha256(f'{{"messages": {dumps(messages, sort_keys=True, ensure_ascii=False)}, {tail}'.encode()).hexdigest()

        return key

    async def _answer(self, client, limit, key: str, messages: list[dict]) -> AnswerResult:
        """A request not in the cache: asked, validated, re-asked once if invalid, cached."""
        usage: Counter = Counter()
        for attempt in range(2):  # the answer, and one re-ask with the validation error
            result = await self._call(client, limit, messages, usage)
            if isinstance(result, AnswerResult):
                return result
            content, model = result
            try:
                payload = json.loads(content)
                self.validator.validate(payload)
            except (ValueError, jsonschema_rs.ValidationError) as exc:
                problem = exc.message if isinstance(exc, jsonschema_rs.ValidationError) else f"not JSON ({exc})"
                if attempt == 0:
                    usage["reasks"] += 1
                    messages = messages + [{"role": "assistant", "content": content},
                                           {"role": "user", "content": f"That answer is invalid: {problem}. "
                                            "Answer again with JSON only, matching the schema."}]  # fmt: skip
                    continue
                return AnswerResult(None, "invalid_answer", f"{problem}; raw answer: {content[:500]!r}", model, usage)
            # File creation blocks for ~0.5 ms: off the event loop, so the other requests keep flowing.
            self.cache.put(key, {"payload": payload, "model": model})
            return AnswerResult(payload, model=model, usage=usage)
        raise AssertionError("unreachable")

    async def _call(self, client, limit, messages, usage):
        """(content, model) of one completion, retrying transient failures; an AnswerResult on failure."""
        import openai

        body = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens, "seed": self.params["seed"]}  # fmt: skip
        if (rf := self._response_format(self.schema)) is not None:
            body["response_format"] = rf
        last = ""
        text = sum(len(m["content"]) if isinstance(m["content"], str) else
                   sum(len(p.get("text", "")) + 1000 for p in m["content"]) for m in messages)  # fmt: skip
        tokens = text // 4 + self.cfg.max_tokens  # an upper estimate (an image counted as ~250 tokens)
        for attempt in range(self.cfg.max_retries + 1):
            await limit.wait(tokens)
            usage["requests"] += 1
            try:
                # The client's generic POST (same transport, auth and error types as chat.completions.create):
                # the typed method re-walks the parameters and builds response objects, ~1.5 ms of client
                # CPU per request, which caps a worker's request rate (bench/annotate.py).
                resp = await client.post("/chat/completions", cast_to=object, body=body)
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as exc:  # fmt: skip
                last = f"{type(exc).__name__}: {getattr(exc, 'status_code', '')}"
                usage["retries"] += 1
                delay = _retry_after(exc)
                if delay is None:
                    delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)
                await asyncio.sleep(delay)
                continue
            except openai.APIStatusError as exc:  # 4xx other than 429: retrying will not help
                return AnswerResult(None, "api_error", f"HTTP {exc.status_code}: {str(exc)[:300]}", usage=usage)
            tokens_used = resp.get("usage") or {}
            usage["prompt_tokens"] += tokens_used.get("prompt_tokens") or 0
            usage["completion_tokens"] += tokens_used.get("completion_tokens") or 0
            choices = resp.get("choices") or []
            content = ((choices[0].get("message") or {}).get("content") or "") if choices else ""
            return content, resp.get("model") or self.cfg.model
        return AnswerResult(None, "api_unavailable", f"gave up after {self.cfg.max_retries + 1} attempts ({last})",
                            usage=usage)  # fmt: skip
