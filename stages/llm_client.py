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
import base64
import json
import logging
import os
import random
from collections import Counter
from functools import lru_cache
from pathlib import Path

import jsonschema_rs

from schemas.quarantine import excerpt
from stages import llm_runtime
from stages.annotate import ClipRequest, caption_schema, qa_schema, video_schema
from stages.llm_cache import ResponseCache, cache_key, cache_key_function
from stages.llm_offline import OfflineAnnotator
from stages.llm_reply import RETRY_STATUS, AnswerResult, BadReply, Redactor, parse_completion, retry_after
from stages.llm_runtime import LocalLimiter, Prefetch, Runtime, httpx_module, ssl_context

__all__ = ["SCHEMAS", "SYSTEM", "AnnotatorError", "AnswerResult", "OfflineAnnotator", "OpenAIAnnotator",
           "ResponseCache"]  # fmt: skip

log = logging.getLogger(__name__)

SCHEMAS = {"motion": qa_schema, "caption": caption_schema, "video": video_schema, "video_qa": qa_schema}
SYSTEM = "You are a careful annotator of human motion data. You answer with JSON only."
CONNECTIONS_PER_CLIENT = 8
# Bounds on what a reply can make us hold, send or store. A chat completion within max_tokens is a few KB
# (~4 characters a token, JSON escapes at most 6×): a body past the cap is not an answer, and reading it
# whole would let one reply take the worker's memory.
MIN_BODY_BYTES = 4 << 20
ECHO_CHARS = 4000  # of an invalid answer, sent back in the re-ask (a valid answer is far shorter)
PROBLEM_CHARS = 300  # of a validation error's message (it can quote the whole answer)
DETAIL_CHARS = 500  # of a whole detail
# The openai client returns the HTTP response unread when a request carries this header (its
# with_streaming_response does the same), so the body can be read with a bound.
_STREAM_HEADER = "X-Stainless-Raw-Response"


@lru_cache(maxsize=8)
def _validator(kind: str, max_items: int):
    """Built once per schema. jsonschema-rs (compiled) rather than the pure-Python jsonschema: validation
    was ~0.8 ms of a worker's CPU per answer, ~15 % of what caps its request rate (bench/annotate.py)."""
    return jsonschema_rs.validator_for(SCHEMAS[kind](max_items))


class AnnotatorError(RuntimeError):
    """A configuration problem of the annotator (no key, unknown option): stops the build."""


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


class OpenAIAnnotator:
    name = "openai"

    def __init__(self, cfg, prompt_version: str, cache_dir: str | Path, seed: int = 0, limiter=None):
        """``limiter``: an object with ``async wait(tokens)`` (the build's shared rate limit); by default
        an in-process one from ``cfg.requests_per_minute`` / ``cfg.tokens_per_minute``."""
        key = os.environ.get(cfg.api_key_env) or ""
        if not key and llm_runtime.key_required(cfg):
            raise AnnotatorError(f"annotator.api_key_env: the environment variable {cfg.api_key_env} is not set")
        if cfg.http_client not in ("aiohttp", "httpx"):
            raise AnnotatorError(f"annotator.http_client: {cfg.http_client!r} is not aiohttp or httpx")
        if cfg.structured_output not in ("json_schema", "json_object", "none"):
            raise AnnotatorError(f"annotator.structured_output: {cfg.structured_output!r} is not json_schema, "
                                 "json_object or none")  # fmt: skip
        # a keyless local server (vLLM, llama.cpp) gets a word the client insists on sending, not a secret
        self.cfg, self._key, self.prompt_version = cfg, key or llm_runtime.NO_KEY, prompt_version
        if limiter is None:
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
        return self.ask(requests, schema=SCHEMAS[kind](self.cfg.qa_per_clip),
                        validator=_validator(kind, self.cfg.qa_per_clip))  # fmt: skip

    def ask(self, requests, *, schema: dict, validator, system: str = SYSTEM) -> list[AnswerResult]:
        """Answers to ``requests`` (objects with ``prompt`` and ``images``), in order, through the cache, the
        rate limit, retries and one re-ask. ``schema``: the answer's JSON Schema (sent as the structured
        output, and part of the cache key); ``validator``: its ``validate(payload)`` raises on an invalid
        answer (it may normalise the payload in place); ``system``: the system message. The annotator asks
        through :meth:`answer_all`; the LLM judge (``model/judge.py``) asks its own schema and system here."""
        self.schema, self.validator, self.system = schema, validator, system
        return Runtime.get().run(self._answer_all(requests)) if requests else []

    def _http_client(self):
        """The official client's HTTP layer: ``aiohttp`` (openai[aiohttp], ``DefaultAioHttpClient``; its C
        parser and connection pool cost ~40 % less CPU per request than httpx's, which caps a worker's
        request rate) or ``httpx`` (the client's default)."""
        import openai  # here: importing it takes ~2 s, and an offline build never needs it

        if self.cfg.http_client == "aiohttp":
            try:
                import aiohttp  # noqa: F401 - a probe: the optional openai[aiohttp] extra
            except ImportError as exc:
                raise AnnotatorError("annotator.http_client: aiohttp is not installed (pip install 'openai[aiohttp]'), "
                                     "or set annotator.http_client=httpx") from exc  # fmt: skip
            return openai.DefaultAioHttpClient(verify=ssl_context(), limits=httpx_module().Limits(
                max_connections=self.cfg.max_in_flight, max_keepalive_connections=self.cfg.max_in_flight))
        return openai.DefaultAsyncHttpxClient(verify=ssl_context())

    async def _answer_all(self, requests):
        """Answers in request order. ``max_in_flight`` workers take requests in order (no task per request:
        100k+ clips stay cheap and the first requests go out at once); a prompt asked twice (e.g. mirror
        twins of a symmetric motion) is asked once, and the later askers count a cache hit."""
        clients = await self._clients()
        n_clients = len(clients)
        out: list[AnswerResult | None] = [None] * len(requests)
        asked: dict[str, int] = {}  # cache key -> the request that asks it
        later: list[tuple[int, int]] = []  # (request, the request whose answer it shares)
        position = iter(range(len(requests)))
        key_of = self.cache_key_function(self.cfg.model, self.prompt_version, self.params, self.schema)

        def prepare(req):
            messages = self.messages_for(req, self.system)
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

        ahead = Prefetch(requests, prepare, lead=4 * self.cfg.max_in_flight)
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

    async def _clients(self) -> list:
        """On the loop: this endpoint's openai clients (no retries of their own: :meth:`_call` retries)."""
        import openai  # here: importing it takes ~2 s, and an offline build never needs it

        # httpx: several clients, each with a few connections — on every response its connection pool checks
        # each of its connections for expiry (a syscall apiece), so one pool of 64 connections spent ~a third
        # of a worker's CPU there. aiohttp's pool has no such cost: one client.
        per_client = self.cfg.max_in_flight if self.cfg.http_client == "aiohttp" else CONNECTIONS_PER_CLIENT
        n_clients = max(1, -(-self.cfg.max_in_flight // per_client))
        return await Runtime.get().clients_for(
            (self.cfg.base_url, self._key, self.cfg.timeout_s, self.cfg.http_client, self.cfg.max_in_flight),
            lambda: [openai.AsyncOpenAI(base_url=self.cfg.base_url, api_key=self._key, timeout=self.cfg.timeout_s,
                                        max_retries=0, http_client=self._http_client()) for _ in range(n_clients)])

    @staticmethod
    def messages_for(req: ClipRequest, system: str = SYSTEM) -> list[dict]:
        """The chat messages; frames become image parts (base64 JPEG data URLs), as vision models take them."""
        if not req.images:
            return [{"role": "system", "content": system}, {"role": "user", "content": req.prompt}]
        parts = [{"type": "text", "text": req.prompt}] + [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}
            for jpeg in req.images]  # fmt: skip
        return [{"role": "system", "content": system}, {"role": "user", "content": parts}]

    cache_key = staticmethod(cache_key)
    cache_key_function = staticmethod(cache_key_function)

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
        if (refused := self._unsendable(messages)) is not None:
            return refused
        for attempt in range(2):  # the answer, and one re-ask with the validation error
            result = await self._call(client, limit, messages, usage)
            if isinstance(result, AnswerResult):
                return result
            content, model, finish = result
            payload, problem = self._parse_answer(content)
            if problem is None:
                return self._accept(key, content, payload, model, usage)
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

    def _unsendable(self, messages: list[dict]) -> AnswerResult | None:
        """The failure of a request that is never sent (too long, or not valid Unicode), else None."""
        chars = _prompt_chars(messages)
        if chars > self.cfg.max_prompt_chars:  # never sent: a 10 MB caption is not a 2.6 M-token request
            return self._failed("prompt_too_long", f"the prompt has {chars} characters, over "
                                f"annotator.max_prompt_chars={self.cfg.max_prompt_chars}; not sent", None, Counter())  # fmt: skip
        if any(_sendable(t) is not t for t in _texts(messages)):  # no request body can carry it
            return self._failed("invalid_prompt", "the prompt is not valid Unicode (a lone surrogate); not sent",
                                None, Counter())  # fmt: skip
        return None

    def _accept(self, key: str, content: str, payload, model: str, usage: Counter) -> AnswerResult:
        """A valid answer: cached and returned — unless it quotes a credential we sent."""
        # (an escape can spell a secret too: then the decoded answer is what is searched)
        if self.redact.leaks(content if "\\u" not in content else json.dumps(payload, ensure_ascii=False)):
            return self._failed("secret_in_answer", "the answer quotes a credential header we sent", model, usage)
        # File creation blocks for ~0.5 ms: off the event loop, so the other requests keep flowing.
        self.cache.put(key, {"payload": payload, "model": model})
        return AnswerResult(payload, model=model, usage=usage)

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

    def _body(self, messages: list[dict]) -> dict:
        """The chat-completion request body (as sent, or as a line of a batch)."""
        body = {"model": self.cfg.model, "messages": messages, "temperature": self.cfg.temperature,
                "max_tokens": self.cfg.max_tokens, "seed": self.params["seed"]}  # fmt: skip
        if (rf := self._response_format(self.schema)) is not None:
            body["response_format"] = rf
        return body

    async def _call(self, client, limit, messages, usage):
        """(content, model, finish_reason) of one completion, retrying transient failures; an AnswerResult
        on failure."""
        import openai  # here: importing it takes ~2 s, and an offline build never needs it

        body = self._body(messages)
        # an upper estimate (an image counted as ~250 tokens)
        images = sum(len(m["content"]) for m in messages if not isinstance(m["content"], str))
        tokens = (_prompt_chars(messages) + 1000 * images) // 4 + self.cfg.max_tokens
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            await limit.wait(tokens)
            usage["requests"] += 1
            try:
                return parse_completion(*await self._post(client, body), usage, self.redact, self.cfg.model)
            except (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                    openai.APIConnectionError) as exc:  # fmt: skip
                status = getattr(exc, "status_code", None)
                said = f": HTTP {status}: {self.redact.quote(str(exc))}" if status else ""
                failure = BadReply("api_unavailable", f"{type(exc).__name__}{said}", retry=True,
                                    delay=retry_after(getattr(exc, "response", None), self.cfg.backoff_max_s))  # fmt: skip
            except openai.APIStatusError as exc:  # other 4xx: retrying will not help (but for 408 and 409)
                failure = BadReply("api_error" if exc.status_code not in RETRY_STATUS else "api_unavailable",
                                    f"HTTP {exc.status_code}: {self.redact.quote(str(exc))}",
                                    retry=exc.status_code in RETRY_STATUS,
                                    delay=retry_after(exc.response, self.cfg.backoff_max_s))  # fmt: skip
            except BadReply as exc:
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
        httpx = httpx_module()
        try:
            response = await client.post("/chat/completions", cast_to=httpx.Response, body=body,
                                         options={"headers": {_STREAM_HEADER: "stream"}})  # fmt: skip
        except httpx.HTTPError as exc:  # an error status whose body does not decode (its Content-Encoding lies)
            raise BadReply("api_unavailable", f"reading the reply failed: {type(exc).__name__}: "
                            f"{self.redact.quote(str(exc))}", retry=True) from None  # fmt: skip
        kind = self.redact.quote(response.headers.get("content-type", "no content type").split(";")[0].strip(), 60)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body:
                raise BadReply("malformed_response", f"the body ({kind}) declares {declared} bytes, over the bound on "
                                f"a reply of {self.max_body} bytes (annotator.max_tokens={self.cfg.max_tokens})")  # fmt: skip
            chunks, size = [], 0
            async with asyncio.timeout(self.cfg.timeout_s):  # a body that trickles in counts against the timeout
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body:
                        raise BadReply("malformed_response", f"the body ({kind}) runs past the bound on a reply of "
                                        f"{self.max_body} bytes (annotator.max_tokens={self.cfg.max_tokens})")  # fmt: skip
                    chunks.append(chunk)
        except TimeoutError:
            raise BadReply("api_unavailable", f"the body ({kind}) took over annotator.timeout_s={self.cfg.timeout_s} s",
                            retry=True) from None  # fmt: skip
        except httpx.HTTPError as exc:  # the connection broke mid-body, or a Content-Encoding that does not decode
            raise BadReply("api_unavailable", f"reading the body failed: {type(exc).__name__}: "
                            f"{self.redact.quote(str(exc))}", retry=True) from None  # fmt: skip
        finally:
            await response.aclose()
        return b"".join(chunks), kind
