"""A loopback server that speaks OpenAI's files + batches protocol as well as chat completions
(``tests/llm_server.py``), for the ``openai-batch`` backend's tests.

``POST /v1/files`` (multipart, ``purpose=batch``) stores a JSONL upload; ``GET /v1/files`` lists the files;
``POST /v1/batches`` creates a batch of an uploaded file; ``GET /v1/batches`` lists them; ``GET
/v1/batches/{id}`` reports its status, which advances one step per poll: ``validating``, ``in_progress``
(``in_progress_polls`` times), ``finalizing``, then ``completed`` — or ``expired`` for the first ``expire``
batches, with only the first half of their lines answered, or ``failed`` (refused whole, at validation) for
the first ``fail`` ones. While ``release`` is clear a batch stays
``in_progress``. ``GET /v1/files/{id}/content`` serves the output (answered lines) and error files.

Each line is answered as the synchronous endpoint answers the same body, unless ``line_fault(prompt,
attempt)`` returns a replacement for the line's ``response``/``error`` (a dict with either key) or a
string (the answer's content); ``attempt`` counts the askings of that prompt, synchronous and batched.
The server counts uploads, batch creations and polls, so tests can prove what was (not) submitted twice.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable

from tests.llm_server import FakeLLM

__all__ = ["FakeBatchLLM"]


def _user_text(body: dict) -> str:
    """The first user message's text, as the synchronous fake reads it."""
    for m in body.get("messages", []):
        if m["role"] == "user":
            c = m["content"]
            return c if isinstance(c, str) else " ".join(p.get("text", "") for p in c if p.get("type") == "text")
    return ""


class FakeBatchLLM(FakeLLM):
    def __init__(self, *, in_progress_polls: int = 2, expire: int = 0, fail: int = 0, id_prefix: str = "batch-",
                 line_fault: Callable[[str, int], dict | str | None] | None = None, **kw):  # fmt: skip
        super().__init__(**kw)
        self.in_progress_polls, self.expire, self.fail, self.line_fault = in_progress_polls, expire, fail, line_fault
        self.id_prefix = id_prefix  # of batch ids (a hostile server's can quote the key)
        self.release = threading.Event()
        self.release.set()
        self.files: dict[str, dict] = {}  # id -> {"filename", "purpose", "data"}
        self.batches: dict[str, dict] = {}  # id -> the batch object (and "_polls")
        self.uploads: list[str] = []  # filenames, in upload order
        self.polls: Counter = Counter()  # status reported -> times
        self.batch_lines = 0

    # --- the protocol's objects --------------------------------------------------------------------
    def _file(self, data: bytes, filename: str, purpose: str) -> dict:
        fid = f"file-{len(self.files):04d}"
        self.files[fid] = {"filename": filename, "purpose": purpose, "data": data}
        return self._file_object(fid)

    def _file_object(self, fid: str) -> dict:
        f = self.files[fid]
        return {"id": fid, "object": "file", "bytes": len(f["data"]), "created_at": 0, "filename": f["filename"],
                "purpose": f["purpose"], "status": "processed"}  # fmt: skip

    def _create_batch(self, req: dict) -> tuple[int, dict]:
        if req.get("input_file_id") not in self.files or req.get("endpoint") != "/v1/chat/completions":
            return 400, {"error": {"message": "unknown input_file_id or endpoint"}}
        bid = f"{self.id_prefix}{len(self.batches):04d}"
        self.batches[bid] = {"id": bid, "object": "batch", "endpoint": req["endpoint"], "completion_window": "24h",
                             "input_file_id": req["input_file_id"], "status": "validating", "created_at": 0,
                             "metadata": req.get("metadata"), "output_file_id": None, "error_file_id": None,
                             "_polls": 0, "_expires": len(self.batches) < self.expire,
                             "_fails": len(self.batches) < self.fail}  # fmt: skip
        return 200, self._public(bid)

    def _public(self, bid: str) -> dict:
        return {k: v for k, v in self.batches[bid].items() if not k.startswith("_")}

    def _poll(self, bid: str) -> dict:
        b = self.batches[bid]
        if b["status"] not in ("completed", "expired", "failed"):
            b["_polls"] += 1
            if b["_fails"]:
                b["status"] = "failed"
                b["errors"] = {"object": "list", "data": [{"code": "token_limit_exceeded", "line": None,
                                                           "message": "Enqueued token limit reached."}]}  # fmt: skip
            elif b["_polls"] == 1:
                b["status"] = "validating"
            elif b["_polls"] <= 1 + self.in_progress_polls or not self.release.is_set():
                b["status"] = "in_progress"
            elif b["_polls"] == 2 + self.in_progress_polls:
                b["status"] = "finalizing"
            else:
                self._finish(b)
        self.polls[b["status"]] += 1
        return self._public(bid)

    def _finish(self, b: dict) -> None:
        lines = [json.loads(x) for x in self.files[b["input_file_id"]]["data"].decode().splitlines() if x.strip()]
        answered = lines[: len(lines) // 2] if b["_expires"] else lines
        out = [self._answer_line(line) for line in answered]
        errors = [{"id": "req", "custom_id": line["custom_id"], "response": None,
                   "error": {"code": "batch_expired", "message": "This request could not be executed before the "
                             "completion window expired."}} for line in lines[len(answered):]]  # fmt: skip
        errors += [o for o in out if o.get("error") or o["response"]["status_code"] != 200]
        out = [o for o in out if not o.get("error") and o["response"]["status_code"] == 200]
        for name, rows in (("output_file_id", out), ("error_file_id", errors)):
            if rows:
                data = "".join(json.dumps(r) + "\n" for r in rows).encode()
                b[name] = self._file(data, f"{b['id']}-{name}.jsonl", "batch_output")["id"]
        b["status"] = "expired" if b["_expires"] else "completed"
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}

    def _answer_line(self, line: dict) -> dict:
        body = line["body"]
        prompt = _user_text(body)
        digest = hashlib.sha256(prompt.encode()).hexdigest()
        self.by_prompt[digest] += 1
        self.batch_lines += 1
        self.bodies.append(body)
        base = {"id": "req", "custom_id": line["custom_id"], "error": None}
        fault = self.line_fault(prompt, self.by_prompt[digest]) if self.line_fault else None
        if isinstance(fault, dict):
            return base | {"response": None} | fault
        content = fault if isinstance(fault, str) else json.dumps(self.answer(prompt))
        return base | {"response": {"status_code": 200, "request_id": "r", "body": self.reply(body, prompt, content)}}

    # --- routes ------------------------------------------------------------------------------------
    def route(self, method: str, path: str, headers, raw: bytes) -> tuple[int, object] | None:
        """(status, JSON or bytes) of a files/batches request; None for anything else (chat completions)."""
        path = path.split("?", 1)[0]
        with self.lock:
            if method == "POST" and path == "/v1/files":
                msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                    b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + raw)  # fmt: skip
                parts = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
                upload = parts["file"]
                self.uploads.append(upload.get_filename())
                return 200, self._file(upload.get_payload(decode=True), upload.get_filename(),
                                       parts["purpose"].get_content().strip())  # fmt: skip
            if method == "GET" and path == "/v1/files":
                return 200, {"object": "list", "data": [self._file_object(f) for f in self.files], "has_more": False}
            if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
                fid = path.removeprefix("/v1/files/").removesuffix("/content")
                return (200, self.files[fid]["data"]) if fid in self.files else (404, {"error": {"message": "no file"}})
            if method == "POST" and path == "/v1/batches":
                return self._create_batch(json.loads(raw))
            if method == "GET" and path == "/v1/batches":
                return 200, {"object": "list", "data": [self._public(b) for b in self.batches], "has_more": False}
            if method == "GET" and path.startswith("/v1/batches/"):
                bid = path.removeprefix("/v1/batches/")
                return (200, self._poll(bid)) if bid in self.batches else (404, {"error": {"message": "no batch"}})
        return None

    def _handler(self):
        owner, base = self, super()._handler()

        class Handler(base):
            def _route(self, method: str) -> bool:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))) if method == "POST" else b""
                got = owner.route(method, self.path, self.headers, raw)
                if got is None:
                    return False
                status, body = got
                if isinstance(body, bytes):
                    self._send(status, body, content_type="application/octet-stream")
                else:
                    self._send(status, json.dumps(body).encode())
                return True

            def do_GET(self):
                if not self._route("GET"):
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                if self.path.split("?", 1)[0] == "/v1/chat/completions":
                    return super().do_POST()
                if not self._route("POST"):
                    self._send(404, b'{"error": {"message": "not found"}}')

        return Handler
