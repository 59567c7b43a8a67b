"""The pipeline side of annotation: the annotator a unit's tasks use (offline, or an OpenAI-compatible
endpoint behind the build's shared rate limit and response cache), what annotation costs, and the budget
that stops a build before it spends more."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pipeline.config import BuildConfig, ConfigError, config_hash
from pipeline.ratelimit import actor_name, make_limiter
from pipeline.runstate import ANNOTATION_CACHE, RunState, RunStateError, atomic_write_json
from stages.annotate import TASKS

__all__ = ["BATCH_STATE", "BatchState", "BudgetExceeded", "check_api_key", "cost_usd", "make_annotator", "spent_usd"]

BATCH_STATE = "batches"  # OUT/.movid/batches/<unit id>.<task>.json: a unit task's batches (ids only)


class BudgetExceeded(RuntimeError):
    """The annotation budget is spent: the build stops; rerun with a larger annotator.budget_usd to go on."""


def cost_usd(usage: Mapping, annotator_cfg) -> float:
    """What ``usage`` (``prompt_tokens``, ``completion_tokens``; of those, ``batch_prompt_tokens`` and
    ``batch_completion_tokens`` were asked through a batch API, at ``batch_discount`` times the price) costs
    at the configured prices: the one cost formula (unit budget, manifest, dry run)."""
    a = annotator_cfg

    def tokens(kind: str) -> float:  # the batch share at its discount
        batch = usage.get(f"batch_{kind}_tokens", 0)
        return usage.get(f"{kind}_tokens", 0) - batch + batch * a.batch_discount

    return (tokens("prompt") / 1000 * a.price_per_1k_prompt_tokens
            + tokens("completion") / 1000 * a.price_per_1k_completion_tokens)  # fmt: skip


def spent_usd(state: RunState, cfg: BuildConfig) -> float:
    """What the finished units of this build paid for annotation (from their stats)."""
    total = 0.0
    if state.units_dir.is_dir():
        for stats_file in state.units_dir.glob("*/stats.json"):
            stages = json.loads(stats_file.read_text()).get("stages", {})
            total += sum(cost_usd(stages.get(t.stage, {}), cfg.annotator) for t in TASKS.values())
    return total


def check_api_key(cfg: BuildConfig) -> None:
    """Before any work starts (Ray included): an endpoint that needs a key has one in the environment."""
    a = cfg.annotator
    if a.backend not in ("openai", "openai-batch"):
        return
    from stages.llm_runtime import key_required  # (the HTTP client's runtime: only for LLM builds)

    if key_required(a) and not os.environ.get(a.api_key_env):
        raise ConfigError(f"annotator.api_key_env: the environment variable {a.api_key_env} is not set (OpenAI's API "
                          "needs a key; a local server given by annotator.base_url needs none)")  # fmt: skip


class BatchState:
    """A unit task's batch jobs (``stages/llm_batch.py``) in ``OUT/.movid/batches/<unit id>.<task>.json``:
    names, request keys (cache keys: hashes), file and batch ids — never a key, prompt or answer. Written
    atomically at each step, so a killed build's rerun finds every batch it submitted."""

    def __init__(self, out: str, job: str):
        self.name, self.path = job, RunState(out).dir / BATCH_STATE / f"{job}.json"

    def load(self) -> list[dict]:
        try:
            return json.loads(self.path.read_text())["jobs"]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:  # (written atomically: a hand edit gets here)
            raise RunStateError(f"{self.path} is unreadable ({exc!r}): it records batches already submitted; "
                                "restore it, or remove it to submit them again") from None  # fmt: skip

    def save(self, jobs: list[dict]) -> None:
        atomic_write_json(self.path, {"jobs": jobs})


def make_annotator(cfg: BuildConfig, out: str, prompt_version: str, job: str):
    """The annotator for a unit's task (``job``: ``<unit id>.<task>``, which names the task's batch state
    with the openai-batch backend); with an endpoint and a budget, refuses (``BudgetExceeded``) once the
    finished units have spent it."""
    # (an HTTP client and its imports: only in units that annotate)
    from stages.llm_client import OfflineAnnotator, OpenAIAnnotator

    a = cfg.annotator
    if a.backend not in ("openai", "openai-batch"):
        return OfflineAnnotator(a.qa_per_clip, cfg.seed)
    if a.budget_usd is not None:
        spent = spent_usd(RunState(out), cfg)
        if spent >= a.budget_usd:
            raise BudgetExceeded(f"annotation budget spent: ${spent:.2f} of annotator.budget_usd=${a.budget_usd:.2f}; "
                                 "finished units are kept — rerun with a larger budget to go on")  # fmt: skip
    limiter = make_limiter(actor_name(config_hash(cfg)), a.requests_per_minute, a.tokens_per_minute)
    cache = a.cache_dir or Path(out) / ANNOTATION_CACHE
    if a.backend == "openai-batch":
        from stages.llm_batch import BatchAnnotator

        return BatchAnnotator(a, prompt_version, cache, seed=cfg.seed, limiter=limiter, state=BatchState(out, job))
    return OpenAIAnnotator(a, prompt_version, cache, seed=cfg.seed, limiter=limiter)
