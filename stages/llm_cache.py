"""The LLM response cache: one JSON file per key, written atomically (safe with many processes and machines on
shared storage), by a writer thread while a batch is answered, and its keys. The annotator's client and the
judge use it."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
from contextlib import contextmanager
from pathlib import Path
from queue import SimpleQueue

__all__ = ["ResponseCache", "cache_key", "cache_key_function"]


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


def cache_key(model: str, prompt_version: str, params: dict, messages: list[dict], schema: dict) -> str:
    """The response cache key: model, prompt version, generation parameters, schema and the exact input —
    ``ResponseCache.key`` of those parts."""
    return cache_key_function(model, prompt_version, params, schema)(messages)


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
