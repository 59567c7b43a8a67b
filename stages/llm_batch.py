"""The ``openai-batch`` annotator backend: a unit task's requests asked through an OpenAI-style batch API
(``/v1/files`` + ``/v1/batches``), at the batch price, through the official ``openai`` client.

The requests not in the response cache are written as JSONL lines (``custom_id``, ``method``, ``url``,
``body``: the synchronous client's chat-completion body), uploaded (``purpose=batch``), one batch created
(``completion_window=24h``), polled every ``annotator.batch_poll_s``, and its output and error files
downloaded. Every line's reply is untrusted input, parsed and validated as a synchronous reply is, and a
valid answer is cached under the same key — so a later synchronous run pays nothing for it.

What was submitted is written down before anything is uploaded: ``OUT/.movid/batches/<unit>.<task>.json``
(atomic writes) lists each batch job — a name of its own, its request keys (cache keys, hashes), then its
file and batch ids as they are known. No key, prompt or answer is in it. A rerun of a killed or stopped
build reads it and polls the recorded batches (a job whose file or batch id was not yet written is found
again by its file name or its input file in the server's lists), and only requests that no recorded batch
holds are submitted: nothing is paid for twice.

A line that failed (an error, a non-200, an invalid answer) or that an expired, failed or cancelled batch
left unanswered is retried as ``annotator.batch_retry`` says: ``sync`` (synchronously, at the full price),
``batch`` (once more, in a new batch) or ``none``; what is still unanswered is quarantined with its reason.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

from stages.llm_client import AnswerResult, OpenAIAnnotator
from stages.llm_reply import RETRY_STATUS, BadReply, parse_completion

__all__ = ["BATCH_MAX_LINES", "BatchAnnotator", "BatchFailed", "BatchStillRunning"]

BATCH_MAX_LINES = 50_000  # requests in one batch (OpenAI's limit)
ENDPOINT = "/v1/chat/completions"
FINAL = ("completed", "failed", "expired", "cancelled")  # statuses after which a batch answers no more
CONTROL_TIMEOUT_S = 600.0  # an upload or a download of a large file
ID_CHARS = 200  # a file or batch id longer than this is not an id
LINE_OVERHEAD = 4096  # bytes of a batch output line around its reply body (ids, status)


class BatchStillRunning(RuntimeError):
    """A batch not finished within ``annotator.batch_max_wait_s``: the build stops; a rerun polls it again."""


class BatchFailed(RuntimeError):
    """A batch refused as a whole (status ``failed``: its input file, a queue limit): the build stops rather
    than ask every request again at the full price; a rerun submits a new batch."""


def _reply_failure(line: dict, redact) -> BadReply | None:
    """The failure a batch output line reports (an ``error``, or a non-200 response), else None."""
    error = line.get("error")
    if error:  # (the requests an expired or cancelled batch did not run are listed with these codes)
        code = error.get("code") if isinstance(error, dict) else None
        return BadReply(code if code in ("batch_expired", "batch_cancelled") else "api_error",
                        f"the batch line failed: {redact.quote(error)}")  # fmt: skip
    status = line["response"].get("status_code")
    if status != 200:
        transient = status in (*RETRY_STATUS, 429) or (isinstance(status, int) and status >= 500)
        return BadReply("api_unavailable" if transient else "api_error",
                        f"HTTP {redact.quote(status, 20)} in the batch: {redact.quote(line['response'].get('body'))}")
    return None


class BatchAnnotator(OpenAIAnnotator):
    # the rows' provenance: the same answers as the synchronous backend, under the same cache keys
    name = "openai"

    def __init__(self, cfg, prompt_version: str, cache_dir, seed: int = 0, limiter=None, *, state):
        """``state``: the unit task's record of its batch jobs — ``name`` (unique in the build), ``load()``
        (the jobs, [] at first) and ``save(jobs)`` (atomic) — kept by the pipeline in ``OUT/.movid``."""
        super().__init__(cfg, prompt_version, cache_dir, seed=seed, limiter=limiter)
        self.state = state

    # --- the unit task's requests ----------------------------------------------------------------------
    async def _answer_all(self, requests):
        """Answers in request order: cache hits, then one batch (or more, past BATCH_MAX_LINES) for the rest,
        then the retries. A prompt asked twice is asked once; the later askers count a cache hit."""
        key_of = self.cache_key_function(self.cfg.model, self.prompt_version, self.params, self.schema)
        keys, done, pending = [], {}, {}  # per request; key -> result; key -> messages to ask
        for req in requests:
            messages = self.messages_for(req, self.system)
            key = key_of(messages)
            keys.append(key)
            if key in done or key in pending:
                continue
            if (hit := self.cache.get(key)) is not None:
                done[key] = AnswerResult(hit["payload"], model=hit["model"], usage=Counter(cache_hits=1))
            elif (refused := self._unsendable(messages)) is not None:
                done[key] = refused
            else:
                pending[key] = messages
        if pending:
            with self.cache.writer():
                done |= await self._ask_pending(pending)
        out, seen = [], set()
        for key in keys:
            res = done[key]
            out.append(res if key not in seen else AnswerResult(res.payload, res.error, res.detail, res.model,
                                                                Counter(cache_hits=1)))  # fmt: skip
            seen.add(key)
        return out

    async def _ask_pending(self, pending: dict[str, list]) -> dict[str, AnswerResult]:
        """A result per pending key: the recorded batches first (a rerun), then new ones, then the retries."""
        client = (await self._clients())[0].with_options(max_retries=self.cfg.max_retries,
                                                         timeout=max(self.cfg.timeout_s, CONTROL_TIMEOUT_S))  # fmt: skip
        jobs = self.state.load()
        answers: dict[str, AnswerResult] = {}
        failed: dict[str, BadReply] = {}
        usage = {key: Counter() for key in pending}
        rounds = 2 if self.cfg.batch_retry == "batch" else 1
        # first the batches submitted before (by a run that was killed or stopped); a failed one (kept on
        # record) holds no answer
        run = [job for job in jobs if not job.get("failed")]
        while True:
            await asyncio.gather(*(self._run_job(client, job, jobs, pending, answers, failed, usage) for job in run))
            tries = Counter(k for job in jobs if not job.get("failed") for k in job["keys"].values())
            todo = [k for k in pending if k not in answers and tries[k] < rounds]
            if not todo:
                break
            for key in todo:
                usage[key]["retries"] += tries[key] > 0
            run = [{"name": f"{self.state.name}-{len(jobs) + n}-{uuid.uuid4().hex[:8]}",
                    "keys": {f"r{j}": k for j, k in enumerate(todo[i : i + BATCH_MAX_LINES])}}
                   for n, i in enumerate(range(0, len(todo), BATCH_MAX_LINES))]  # fmt: skip
            jobs += run
            self.state.save(jobs)  # written down before anything is uploaded
        return await self._retry(pending, answers, failed, usage)

    async def _retry(self, pending, answers, failed, usage) -> dict[str, AnswerResult]:
        """The keys no batch answered: asked synchronously (``batch_retry=sync``), else quarantined."""
        left = [k for k in pending if k not in answers]
        if left and self.cfg.batch_retry == "sync":
            clients = await self._clients()
            gate = asyncio.Semaphore(self.cfg.max_in_flight)

            async def one(i: int, key: str) -> None:
                async with gate:
                    res = await self._answer(clients[i % len(clients)], self.limiter, key, pending[key])
                res.usage.update(usage[key] + Counter(retries=1))
                answers[key] = res

            await asyncio.gather(*(one(i, k) for i, k in enumerate(left)))
            return answers
        for key in left:
            why = failed.get(key) or BadReply("batch_incomplete", "no batch answered this request")
            answers[key] = self._failed(why.reason, why.detail, None, usage[key])
        return answers

    # --- one batch job: submit (once), wait, collect -----------------------------------------------------
    async def _run_job(self, client, job: dict, jobs: list, pending, answers, failed, usage) -> None:
        if not any(k in pending and k not in answers for k in job["keys"].values()):
            return  # all its answers are in the cache (or came from a later job)
        await self._submit(client, job, jobs, pending)
        batch = await self._wait(client, job)
        if batch.status == "failed":  # the batch as a whole was refused (its file, a queue limit): none was asked
            job["failed"] = True  # a rerun submits these requests again
            self.state.save(jobs)
            raise BatchFailed(f"batch {job['batch_id']} failed{self._errors(batch)}; nothing in it was answered or paid for — rerun the build to submit it again")  # fmt: skip
        await self._collect(client, job, batch, pending, answers, failed, usage)

    async def _submit(self, client, job: dict, jobs: list, pending) -> None:
        """The job's file uploaded and its batch created — each once: a job recorded without an id is
        looked for on the server (by its file's name, by the batch's input file) before it is made."""
        filename = f"movid-{job['name']}.jsonl"
        if "file_id" not in job:
            file_id = await self._find(client.files.list(purpose="batch"), lambda f: f.filename == filename)
            if file_id is None:
                job["keys"] = {c: k for c, k in job["keys"].items() if k in pending}  # (a rerun: some are cached)
                self.state.save(jobs)
                lines = (json.dumps({"custom_id": c, "method": "POST", "url": ENDPOINT,
                                     "body": self._body(pending[k])}, ensure_ascii=False) for c, k in job["keys"].items())  # fmt: skip
                data = ("\n".join(lines) + "\n").encode("utf-8")
                file_id = (await client.files.create(file=(filename, data, "application/jsonl"), purpose="batch")).id
            job["file_id"] = self._id(file_id)
            self.state.save(jobs)
        if "batch_id" not in job:
            batch_id = await self._find(client.batches.list(), lambda b: b.input_file_id == job["file_id"])
            if batch_id is None:
                batch_id = (await client.batches.create(input_file_id=job["file_id"], endpoint=ENDPOINT,
                                                        completion_window="24h", metadata={"movid_job": job["name"]})).id  # fmt: skip
            job["batch_id"] = self._id(batch_id)
            self.state.save(jobs)

    def _id(self, value) -> str:
        """An id the server gave (of a file or a batch): recorded in ``OUT``, so a short printable name that
        quotes no credential we sent, or the build stops."""
        if isinstance(value, str) and 0 < len(value) <= ID_CHARS and value.isprintable() and self.redact(value) == value:
            return value
        raise BatchFailed(f"the batch API gave an id that is not one: {self.redact.quote(value, 60)!r}")

    @staticmethod
    async def _find(listing, match) -> str | None:
        """The id of the first listed object that ``match``es (the client pages through the list)."""
        async for item in listing:
            if match(item):
                return item.id
        return None

    async def _wait(self, client, job: dict):
        """The batch once it is final, polled every ``batch_poll_s``; past ``batch_max_wait_s``, stops."""
        deadline = time.monotonic() + self.cfg.batch_max_wait_s
        while True:
            batch = await client.batches.retrieve(job["batch_id"])
            if batch.status in FINAL:
                return batch
            left = deadline - time.monotonic()
            if left <= 0:
                raise BatchStillRunning(f"batch {job['batch_id']} is still {self.redact.quote(batch.status, 40)} after annotator.batch_max_wait_s"
                                        f"={self.cfg.batch_max_wait_s:g} s; rerun the build to go on waiting for it "
                                        "(nothing is submitted again)")  # fmt: skip
            await asyncio.sleep(min(self.cfg.batch_poll_s, left))

    async def _collect(self, client, job: dict, batch, pending, answers, failed, usage) -> None:
        """Every line of the batch's output and error files, parsed as untrusted replies; a request the
        batch did not answer fails with the batch's status."""
        keys, seen = job["keys"], set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            raw = await self._download(client, file_id, len(keys)) if file_id else b""
            for text in raw.splitlines():
                try:
                    line = json.loads(text)
                except (ValueError, RecursionError):
                    continue
                key = keys.get(line.get("custom_id")) if isinstance(line, dict) else None
                if isinstance(key, str) and key in pending and key not in answers and key not in seen:
                    seen.add(key)
                    self._take_line(key, line, answers, failed, usage[key])
        said = self._errors(batch)
        for key in keys.values():
            if key in pending and key not in answers and key not in seen:
                failed[key] = BadReply("batch_incomplete" if batch.status == "completed" else f"batch_{batch.status}",
                                       f"batch {job['batch_id']} ended {batch.status} without answering this request{said}")

    async def _download(self, client, file_id: str, lines: int) -> bytes:
        """A batch's output or error file, read with a bound: ``lines`` replies of at most ``max_body`` bytes."""
        bound = lines * (self.max_body + LINE_OVERHEAD)
        chunks, size = [], 0
        async with client.files.with_streaming_response.content(file_id) as response:
            async for chunk in response.iter_bytes():
                size += len(chunk)
                if size > bound:
                    raise BatchFailed(f"the batch file {self._id(file_id)} runs past {bound} bytes, the bound on "
                                      f"{lines} replies (annotator.max_tokens={self.cfg.max_tokens})")  # fmt: skip
                chunks.append(chunk)
        return b"".join(chunks)

    def _errors(self, batch) -> str:
        """``: <the batch's errors>`` (quoted), or nothing."""
        errors = getattr(batch.errors, "data", None) or []
        return f": {self.redact.quote('; '.join(str(getattr(e, 'message', e)) for e in errors))}" if errors else ""

    def _take_line(self, key: str, line: dict, answers, failed, usage: Counter) -> None:
        """One output line: a valid answer is cached and taken, anything else is the key's failure."""
        usage.update(requests=1, batch_requests=1)
        tokens: Counter = Counter()
        try:
            if not isinstance(line.get("response"), dict) and not line.get("error"):
                raise BadReply("malformed_response", "a batch line with neither a response nor an error")
            if (bad := _reply_failure(line, self.redact)) is not None:
                raise bad
            body = json.dumps(line["response"].get("body")).encode()
            content, model, finish = parse_completion(body, "application/json", tokens, self.redact, self.cfg.model)
        except BadReply as exc:
            failed[key] = exc
            return
        finally:
            usage.update(tokens)
            usage.update(batch_prompt_tokens=tokens["prompt_tokens"], batch_completion_tokens=tokens["completion_tokens"])
        payload, problem = self._parse_answer(content)
        if problem is None:
            answers[key] = self._accept(key, content, payload, model, usage)
            failed.pop(key, None)
        elif finish == "length":
            failed[key] = BadReply("truncated_answer", f"the answer stopped at annotator.max_tokens={self.cfg.max_tokens}"
                                   f" (finish_reason length): {self.redact.quote(problem)}")  # fmt: skip
        else:
            failed[key] = BadReply("invalid_answer", f"{self.redact.quote(problem)}; raw answer: "
                                   f"{self.redact.quote(content)!r}")  # fmt: skip
