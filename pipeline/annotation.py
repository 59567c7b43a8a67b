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
from pipeline.runstate import ANNOTATION_CACHE, RunState
from stages.annotate import TASKS

__all__ = ["BudgetExceeded", "check_api_key", "cost_usd", "make_annotator", "spent_usd"]


class BudgetExceeded(RuntimeError):
    """The annotation budget is spent: the build stops; rerun with a larger annotator.budget_usd to go on."""


def cost_usd(usage: Mapping, annotator_cfg) -> float:
    """What ``usage`` (``prompt_tokens``, ``completion_tokens``) costs at the configured prices: the one cost
    formula (unit budget, manifest, dry run)."""
    a = annotator_cfg
    return (usage.get("prompt_tokens", 0) / 1000 * a.price_per_1k_prompt_tokens
            + usage.get("completion_tokens", 0) / 1000 * a.price_per_1k_completion_tokens)  # fmt: skip


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
    from stages.llm_client import key_required  # (the HTTP client's module: only for LLM builds)

    a = cfg.annotator
    if a.backend == "openai" and key_required(a) and not os.environ.get(a.api_key_env):
        raise ConfigError(f"annotator.api_key_env: the environment variable {a.api_key_env} is not set (OpenAI's API "
                          "needs a key; a local server given by annotator.base_url needs none)")  # fmt: skip


def make_annotator(cfg: BuildConfig, out: str, prompt_version: str):
    """The annotator for a unit's task; with an endpoint and a budget, refuses (``BudgetExceeded``) once the
    finished units have spent it."""
    # (an HTTP client and its imports: only in units that annotate)
    from stages.llm_client import OfflineAnnotator, OpenAIAnnotator

    a = cfg.annotator
    if a.backend != "openai":
        return OfflineAnnotator(a.qa_per_clip, cfg.seed)
    if a.budget_usd is not None:
        spent = spent_usd(RunState(out), cfg)
        if spent >= a.budget_usd:
            raise BudgetExceeded(f"annotation budget spent: ${spent:.2f} of annotator.budget_usd=${a.budget_usd:.2f}; "
                                 "finished units are kept — rerun with a larger budget to go on")  # fmt: skip
    limiter = make_limiter(actor_name(config_hash(cfg)), a.requests_per_minute, a.tokens_per_minute)
    return OpenAIAnnotator(a, prompt_version, a.cache_dir or Path(out) / ANNOTATION_CACHE, seed=cfg.seed,
                           limiter=limiter)  # fmt: skip
