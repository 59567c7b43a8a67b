"""Annotator backends. ``offline``: deterministic answers from the kinematic facts, no network.
``openai``: any OpenAI-compatible chat-completions endpoint through the official ``openai`` client —
bounded requests in flight, a rate limit, retries with exponential backoff and jitter on 429/5xx/timeouts
(honouring Retry-After), structured output, one re-ask when the answer breaks the schema, and a response
cache that makes a rerun free. The API key is read from the environment and never logged or stored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import random
import threading
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

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.exists():  # a stat is cheaper than a failing open
            return None
        try:
            return json.loads(path.read_text())
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
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{random.getrandbits(32):08x}")
        tmp.write_text(json.dumps(value, sort_keys=True))
        os.replace(tmp, path)


@lru_cache(maxsize=1)
def _ssl_context():
    """The TLS context the client would build (system trust as its HTTP library sets it up), made once:
    building it loads the CA bundle, ~25 ms per client otherwise."""
    try:  # the HTTP library this openai release is built on
        import httpx2 as httpx
    except ImportError:
        import httpx

    return httpx.create_ssl_context()


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIAnnotator:
    name = "openai"

    def __init__(self, cfg, prompt_version: str, cache_dir: str | Path, seed: int = 0, limiter=None):
        """``limiter``: an object with ``async wait(tokens)`` (the build's shared rate limit); by default
        an in-process one from ``cfg.requests_per_minute`` / ``cfg.tokens_per_minute``."""
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise AnnotatorError(f"annotator.api_key_env: the environment variable {cfg.api_key_env} is not set")
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
        return asyncio.run(self._answer_all(requests)) if requests else []

    async def _answer_all(self, requests):
        import openai

        # Several clients, each with a few connections: on every response the HTTP connection pool checks
        # each of its connections for expiry (a syscall apiece), so one pool of 64 connections spent ~a third
        # of a worker's CPU there; pools of <= 8 keep that small (bench/annotate.py).
        n_clients = max(1, -(-self.cfg.max_in_flight // CONNECTIONS_PER_CLIENT))
        clients = [openai.AsyncOpenAI(base_url=self.cfg.base_url, api_key=self._key, timeout=self.cfg.timeout_s,
                                      max_retries=0, http_client=openai.DefaultAsyncHttpxClient(verify=_ssl_context()))
                   for _ in range(n_clients)]  # fmt: skip
        gate, limit = asyncio.Semaphore(self.cfg.max_in_flight), self.limiter
        keyed = [(self._key_for(r), r) for r in requests]
        unique = dict(keyed)  # identical prompts (e.g. mirror twins of symmetric motions) are asked once
        try:
            with self.cache.writer():
                answers = await asyncio.gather(*(self._answer(clients[i % n_clients], gate, limit, k, r)
                                                 for i, (k, r) in enumerate(unique.items())))  # fmt: skip
        finally:
            for client in clients:
                await client.close()
        by_key = dict(zip(unique, answers, strict=True))
        out, first = [], set()
        for k, _ in keyed:  # the first user of an answer carries its usage; the others count as cache hits
            res = by_key[k]
            out.append(res if k not in first else AnswerResult(res.payload, res.error, res.detail, res.model,
                                                               Counter(cache_hits=1)))  # fmt: skip
            first.add(k)
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
        """The response cache key: model, prompt version, generation parameters, schema and the exact input."""
        return ResponseCache.key(model=model, prompt_version=prompt_version, params=params, messages=messages,
                                 schema=schema)  # fmt: skip

    def _key_for(self, req: ClipRequest) -> str:
        return self.cache_key(self.cfg.model, self.prompt_version, self.params, self.messages_for(req), self.schema)

    async def _answer(self, client, gate, limit, key: str, req: ClipRequest) -> AnswerResult:
        messages = self.messages_for(req)
        hit = self.cache.get(key)
        if hit is not None:
            return AnswerResult(hit["payload"], model=hit["model"], usage=Counter(cache_hits=1))
        usage: Counter = Counter()
        async with gate:
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
