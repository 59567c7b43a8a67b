"""What makes a build's identity out of its config: ``config_hash`` (every value that changes the shards' bytes)
and ``annotation_digests`` (what the prompt and answer-schema files the annotation tasks use *say*)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config_checks import DEFAULT_PROMPTS, PATH_KEYS
from schemas import SCHEMA_VERSION
from stages.annotate import TASKS

if TYPE_CHECKING:
    from pipeline.config import BuildConfig

__all__ = ["annotation_digests", "changed_config_keys", "config_hash", "hashed_config"]


def annotation_digests(cfg: BuildConfig) -> dict[str, str]:
    """sha256 of the text of every prompt the build's annotation tasks use, and of each task's answer JSON
    schema, with the schema version: what the config names by file or code, whose content changes the
    answers. Only the tasks that run count (none with ``annotator.backend=none``). The offline annotator's
    prompts count too: it does not send them, but every instruction row records its prompt's version (a
    hash of its text), so an edited prompt changes the shards' bytes with either backend."""
    # (the HTTP client's module: imported here, by builds that hash prompts, not by every config load)
    from stages.llm_client import SCHEMAS

    a = cfg.annotator
    out = {"schema_version": str(SCHEMA_VERSION)}
    for name in sorted(a.tasks) if a.backend != "none" else ():
        task = TASKS[name]
        prompt = Path(a.prompts_dir or DEFAULT_PROMPTS) / f"{getattr(a, task.prompt_field)}.txt"
        out[f"{name}.prompt"] = hashlib.sha256(prompt.read_bytes()).hexdigest()
        schema = json.dumps(SCHEMAS[task.kind](a.qa_per_clip), sort_keys=True)
        out[f"{name}.answer_schema"] = hashlib.sha256(schema.encode()).hexdigest()
    return out


# how requests are made and priced, not what the answers are
_TRANSPORT_KEYS = ("max_in_flight", "requests_per_minute", "tokens_per_minute", "timeout_s", "max_retries",
                   "backoff_base_s", "backoff_max_s", "price_per_1k_prompt_tokens",
                   "price_per_1k_completion_tokens", "api_key_env", "budget_usd", "batch_poll_s", "batch_max_wait_s",
                   "batch_retry", "batch_discount")  # fmt: skip


def config_hash(cfg: BuildConfig) -> str:
    """Hash of every config value that changes the shards' bytes. Where the work runs (executor, Ray
    settings) and where inputs lie (source, body-model, index, text and prompt folders) do not count: moving
    them or switching executors keeps a build resumable. What the named prompt and schema files *say* is
    the run identity's ``annotation_inputs`` (``annotation_digests``, next to this hash in ``run.json``), so
    this hash reads no file: Ray workers compute it to find the build's rate-limit actor."""
    return hashlib.sha256(json.dumps(hashed_config(cfg), sort_keys=True).encode()).hexdigest()[:16]


def hashed_config(cfg: BuildConfig) -> dict:
    """The values :func:`config_hash` hashes (kept beside a build, so a changed hash can name its keys)."""
    d = dataclasses.asdict(cfg)
    d.pop("executor")
    d.pop("ray")
    d.pop("local")
    d["sources"] = [s["kind"] for s in d["sources"]]
    for section, key in PATH_KEYS:
        d[section][key] = d[section][key] is not None  # whether it is set counts, not where it lies
    for key in _TRANSPORT_KEYS:
        d["annotator"].pop(key)
    if d["annotator"]["backend"] == "openai-batch":  # the same answers (same cache keys), asked another way
        d["annotator"]["backend"] = "openai"
    return json.loads(json.dumps(d))  # (tuples as lists: as it reads back from a file)


def changed_config_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two :func:`hashed_config` mappings, with both values."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_config_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k} {json.dumps(a)[:40]} → {json.dumps(b)[:40]}")
    return out
