"""``movid build --dry-run``: what the annotation would cost, before anything is spent or written.

The plan is made as for a build; a sample of its motion units is ingested for real and their prompts
built exactly as the annotator would, then looked up in the response cache. Per-clip prompt sizes and
the cache-hit ratio are extrapolated to the whole plan.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import BuildConfig
from pipeline.planner import plan_build
from pipeline.runstate import ANNOTATION_CACHE

__all__ = ["estimate_annotation"]

COMPLETION_TOKENS_PER_QA = 45  # a QA pair with its fields, measured on the offline backend's answers


def estimate_annotation(cfg: BuildConfig, out: str, sample_clips: int = 200) -> dict:
    from pipeline.units import _ingest
    from stages.annotate import build_requests, load_prompt, qa_schema
    from stages.llm_client import SYSTEM, OpenAIAnnotator, ResponseCache

    a = cfg.annotator
    plan = plan_build(cfg)
    units = [u for u in plan.units if u.source_kind != "video"]
    records = sum(len(u.record_ids) for u in units)
    template, version = load_prompt(a.prompts_dir, a.prompt)
    cache = ResponseCache(a.cache_dir or Path(out) / ANNOTATION_CACHE)
    params = {"model": a.model, "temperature": a.temperature, "max_tokens": a.max_tokens, "seed": cfg.seed,
              "structured_output": a.structured_output}  # fmt: skip
    sampled, requests, prompt_chars, hits = 0, 0, 0, 0
    for unit in units:
        if sampled >= sample_clips:
            break
        motion = _ingest(unit, cfg).tables.get("motion")
        sampled += len(unit.record_ids)
        if motion is None or not motion.num_rows:
            continue
        for req in build_requests(motion, template, a.qa_per_clip):
            requests += 1
            messages = OpenAIAnnotator.messages_for(req)
            prompt_chars += len(SYSTEM) + len(req.prompt)
            key = OpenAIAnnotator.cache_key(a.model, version, params, messages, qa_schema(a.qa_per_clip))
            hits += cache.get(key) is not None
    per_record = requests / sampled if sampled else 0.0
    total_requests = round(records * per_record)
    hit_ratio = hits / requests if requests else 0.0
    to_pay = round(total_requests * (1 - hit_ratio))
    prompt_tokens = round(to_pay * (prompt_chars / requests / 4 if requests else 0))  # ~4 characters a token
    completion_tokens = to_pay * min(a.max_tokens, COMPLETION_TOKENS_PER_QA * a.qa_per_clip)
    cost = prompt_tokens / 1000 * a.price_per_1k_prompt_tokens + completion_tokens / 1000 * a.price_per_1k_completion_tokens
    return {"backend": a.backend, "model": a.model, "clips_planned": records, "clips_sampled": sampled,
            "requests": total_requests, "cached": total_requests - to_pay, "requests_to_pay": to_pay,
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost_usd": round(cost, 2),
            "budget_usd": a.budget_usd}  # fmt: skip
