"""A small OpenAI-compatible chat-completions server on loopback, for tests and benchmarks.

It answers ``POST /v1/chat/completions`` with QA JSON grounded in the "travel:" and "jumps:" lines of
the prompt (what a good model would say), answers judge prompts (``judge_qa``: yes/5 when the predicted
answer equals the correct one, else no/1), and injects faults at given rates: latency, 429 with
Retry-After, 500, malformed or truncated JSON, and stalls longer than the client's timeout. It counts
requests per prompt so tests can prove what was (not) paid for.

Hostile replies (the red-team corpus): ``script(prompt, attempt, headers)`` is asked first for every
request — the clip's prompt, which attempt at that prompt this is (1, 2, …; a re-ask counts), and the
request's headers — and a ``Reply`` it returns is sent as is: any status, raw bytes or JSON, any
Content-Type (or none), extra headers such as Retry-After or a lying Content-Length. ``completion()``
builds a chat-completion body to start a reply from.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeLLM", "Reply", "completion"]


@dataclass
class Reply:
    """One scripted HTTP reply. ``body``: bytes as is, str as UTF-8, anything else as JSON. ``content_type``
    None sends no Content-Type; a ``Content-Length`` in ``headers`` replaces the true one (a lying header),
    and ``None`` there sends none: the body then ends when the server closes the connection."""

    status: int = 200
    body: object = b""
    content_type: str | None = "application/json"
    headers: dict = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


def completion(content, *, model: str = "fake-served", finish_reason: str = "stop", usage=None, **fields) -> dict:
    """A chat-completion body around ``content`` (any JSON value: the hostile cases put odd types there)."""
    return {"id": "cmpl-test", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", "content": content}}],
            "usage": usage if usage is not None else {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            **fields}  # fmt: skip


class FakeLLM:
    def __init__(self, *, latency: float = 0.0, p429: float = 0.0, p500: float = 0.0, p_malformed: float = 0.0,
                 p_truncated: float = 0.0, p_stall: float = 0.0, stall_s: float = 5.0, wrong_direction: bool = False,
                 seed: int = 0, script: Callable[[str, int, dict], Reply | None] | None = None):  # fmt: skip
        self.script = script
        self.latency, self.p429, self.p500, self.p_malformed = latency, p429, p500, p_malformed
        self.p_truncated, self.p_stall, self.stall_s, self.wrong_direction = p_truncated, p_stall, stall_s, wrong_direction
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.completed = 0
        self.connections = 0  # TCP connections accepted
        self.by_prompt: Counter = Counter()
        self.statuses: Counter = Counter()
        self.auth_headers: set[str] = set()
        self.bodies: list[dict] = []
        self.body_sizes: list[int] = []  # bytes of each request body, as received
        self.arrivals: list[float] = []  # time.time() of each request
        ThreadingHTTPServer.request_queue_size = 256  # many clients connect at once
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, prompt: str) -> dict:
        judged = re.search(r"Correct Answer: (.*)\nPredicted Answer: (.*)\n", prompt)
        if judged:  # a judge request (configs/prompts/judge_qa.v1.txt): yes/5 when the prediction is the answer
            same = judged.group(1).strip() == judged.group(2).strip()
            return {"pred": "yes", "score": 5} if same else {"pred": "no", "score": 1}
        travel = re.search(r"travel: ([a-z ]+) \(", prompt)
        jumps = re.search(r"jumps: (\d+)", prompt)
        direction = travel.group(1) if travel else "in place"
        if self.wrong_direction:
            direction = "backward" if direction != "backward" else "forward"
        n = int(jumps.group(1)) if jumps else 0
        if 'In "caption", describe' in prompt:  # a detailed-caption request
            return {"caption": f"The person walks {direction}, swinging the arms, and jumps {n} times."}
        if "Frame times" in prompt:  # a vision re-captioning request
            return {"caption": "The person swings the right leg forward, then the left, walking ahead.",
                    "qa": [{"category": "direction", "question": "Where does the person walk?", "answer": "Forward.",
                            "direction": "forward", "body_part": None, "count": None}]}  # fmt: skip
        return {"qa": [
            {"category": "direction", "question": "Where does the person go?", "answer": f"They go {direction}.",
             "direction": direction, "body_part": None, "count": None},
            {"category": "counting", "question": "How many times does the person jump?", "answer": f"{n} times.",
             "direction": None, "body_part": None, "count": n},
            {"category": "hallucination", "question": "Does the person ride a bicycle?",
             "answer": "No, there is no bicycle.", "direction": None, "body_part": None, "count": None},
        ]}  # fmt: skip

    @staticmethod
    def reply(body: dict, prompt: str, content: str) -> dict:
        """The chat completion of ``content`` for request ``body`` whose last user message is ``prompt``."""
        return {"id": "cmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake") + "-served",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4,
                          "total_tokens": (len(prompt) + len(content)) // 4}}  # fmt: skip

    def _handler(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints

            def log_message(self, *args):  # keep test output clean
                pass

            def setup(self):
                super().setup()
                with owner.lock:
                    owner.connections += 1

            def _send(self, status: int, body: bytes, headers: dict | None = None,
                      content_type: str | None = "application/json"):  # fmt: skip
                self.send_response(status)
                if content_type is not None:
                    self.send_header("Content-Type", content_type)
                for k, v in (headers or {}).items():
                    if k.lower() != "content-length":
                        self.send_header(k, v)
                declared = next((v for k, v in (headers or {}).items() if k.lower() == "content-length"), len(body))
                if declared is None:  # no length: the body ends when the connection closes
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(declared))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client refused a reply unread
                    self.close_connection = True
                with owner.lock:
                    owner.statuses[status] += 1
                    owner.completed += 1

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw or b"{}")

                def text(m):  # a message's text; vision requests send a list of parts
                    c = m["content"]
                    return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if p.get("type") == "text")

                prompt = next((text(m) for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
                first_prompt = next((text(m) for m in body.get("messages", []) if m["role"] == "user"), "")
                with owner.lock:
                    owner.arrivals.append(time.time())
                    owner.requests += 1
                    digest = hashlib.sha256(first_prompt.encode()).hexdigest()
                    owner.by_prompt[digest] += 1
                    attempt = owner.by_prompt[digest]
                    owner.auth_headers.add(self.headers.get("Authorization", ""))
                    owner.bodies.append(body)
                    owner.body_sizes.append(len(raw))
                    roll = owner.rng.random()
                if owner.script is not None:
                    scripted = owner.script(first_prompt, attempt, self.headers)  # (names case-insensitive)
                    if scripted is not None:
                        return self._send(scripted.status, scripted.encoded(), scripted.headers, scripted.content_type)
                if owner.latency:
                    time.sleep(owner.latency)
                edges = [owner.p429, owner.p500, owner.p_malformed, owner.p_truncated, owner.p_stall]
                cum = [sum(edges[: k + 1]) for k in range(len(edges))]
                if roll < cum[0]:
                    return self._send(429, b'{"error": {"message": "rate limited"}}', {"Retry-After": "0.01"})
                if roll < cum[1]:
                    return self._send(500, b'{"error": {"message": "boom"}}')
                content = json.dumps(owner.answer(first_prompt))
                if roll < cum[2]:
                    content = "Sure! Here are some questions: " + content[:40]
                elif roll < cum[3]:
                    content = content[: len(content) // 2]
                elif roll < cum[4]:
                    time.sleep(owner.stall_s)
                return self._send(200, json.dumps(owner.reply(body, prompt, content)).encode())

        return Handler


async def serve_async(latency: float, ready) -> None:
    """The same protocol on asyncio streams, for benchmarks: one event loop instead of a thread per
    connection, so 64 sleeping requests cost no thread switches. Answers every request after ``latency``."""
    import asyncio

    fake = FakeLLM.__new__(FakeLLM)  # only its answer() is used here
    fake.wrong_direction = False

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next((ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
                                   if ln.lower().startswith(b"content-length:")), b"0"))  # fmt: skip
                body = json.loads(await reader.readexactly(length) or b"{}")
                msgs = body.get("messages", [])
                user = next((m["content"] for m in msgs if m["role"] == "user"), "")
                prompt = user if isinstance(user, str) else " ".join(p.get("text", "") for p in user)
                await asyncio.sleep(latency)
                content = json.dumps(fake.answer(prompt))
                out = json.dumps({"id": "cmpl", "object": "chat.completion", "created": 0, "model": body.get("model"),
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": content}}],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(out)).encode() + b"\r\n\r\n" + out)  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
    ready(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":  # a standalone server for benchmarks: prints its base URL, serves until killed
    import argparse
    import asyncio

    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--threaded", action="store_true", help="the thread-per-connection server tests use")
    args = ap.parse_args()
    if args.threaded:
        with FakeLLM(latency=args.latency) as srv:
            print(srv.base_url, flush=True)
            threading.Event().wait()
    asyncio.run(serve_async(args.latency, lambda url: print(url, flush=True)))
