"""What the LLM client runs on: the process's event loop and its open connections (:class:`Runtime`), a
thread that prepares requests ahead of the workers (:class:`Prefetch`), the HTTP library and TLS context of
the ``openai`` client, and the in-process rate limit (:class:`LocalLimiter`; a build on Ray shares one
schedule through ``pipeline/ratelimit.py``)."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
from functools import lru_cache
from urllib.parse import urlparse

__all__ = ["NO_KEY", "LocalLimiter", "Prefetch", "Runtime", "Schedule", "httpx_module", "key_required", "ssl_context"]


def httpx_module():
    """The HTTP library this openai release is built on (httpx2 in 3.x, httpx before)."""
    try:
        import httpx2 as httpx
    except ImportError:
        import httpx
    return httpx


@lru_cache(maxsize=1)
def ssl_context():
    """The TLS context the client would build (system trust as its HTTP library sets it up), made once:
    building it loads the CA bundle, ~25 ms per client otherwise."""
    return httpx_module().create_ssl_context()


class Prefetch:
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


class Runtime:
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

    _current: Runtime | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> Runtime:
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


class Schedule:
    """Request start times under requests/min and tokens/min limits (in-process, or as the build's Ray actor)."""

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None):
        self.req_interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.tok_rate = tokens_per_minute / 60.0 if tokens_per_minute else 0.0
        self.next_req = self.next_tok = 0.0

    def reserve(self, tokens: int) -> float:
        """Seconds from now until this request may start; books its slot."""
        now = time.time()
        start = max(now, self.next_req, self.next_tok)
        self.next_req = start + self.req_interval
        if self.tok_rate:
            self.next_tok = max(self.next_tok, start) + tokens / self.tok_rate
        return start - now


class LocalLimiter:
    """The rate limit of one process: what the client waits on when no shared limiter is passed in."""

    def __init__(self, requests_per_minute=None, tokens_per_minute=None):
        self.schedule = Schedule(requests_per_minute, tokens_per_minute)

    async def wait(self, tokens: int = 0) -> None:
        delay = self.schedule.reserve(tokens)
        if delay > 0:
            await asyncio.sleep(delay)


NO_KEY = "no-key"  # what the openai client sends as the key to a server that needs none


def key_required(cfg) -> bool:
    """Whether the endpoint needs an API key: OpenAI's own API (no ``base_url``, or an ``openai.com`` host)
    does; a server at another base URL (a local vLLM or llama.cpp) may run without one, and then none is sent."""
    host = (urlparse(cfg.base_url).hostname or "") if cfg.base_url else "api.openai.com"
    return host == "openai.com" or host.endswith(".openai.com")
