"""``movid build --dry-run``: what the annotation would cost, before anything is spent or written.

The plan is made as for a build; for every annotation task a sample of its units is ingested for real and
the task's prompts built exactly as the annotator would, then looked up in the response cache. Per-record
request counts, prompt sizes and cache-hit ratios are extrapolated to the whole plan, task by task.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.annotation import cost_usd
from pipeline.config import BuildConfig
from pipeline.planner import plan_build
from pipeline.runstate import ANNOTATION_CACHE
from pipeline.stage_graph import ingest
from stages.annotate import TASKS, load_prompt

__all__ = ["estimate_annotation"]

COMPLETION_TOKENS_PER_QA = 45  # a QA pair with its fields, measured on the offline backend's answers
COMPLETION_TOKENS_PER_CAPTION = 120  # a detailed caption (the vision re-caption is under 50 words)
RECAPTION_CHARS = 300  # the video QA prompt carries a re-caption that only the vision pass writes
IMAGE_TOKENS = 250  # an image part, as the client's own rate-limit estimate counts it


def _completion_tokens(kind: str, qa_per_clip: int) -> int:
    return {"caption": COMPLETION_TOKENS_PER_CAPTION, "motion": COMPLETION_TOKENS_PER_QA * qa_per_clip,
            "video": COMPLETION_TOKENS_PER_CAPTION + COMPLETION_TOKENS_PER_QA * qa_per_clip,
            "video_qa": COMPLETION_TOKENS_PER_QA * qa_per_clip}[kind]  # fmt: skip


def estimate_annotation(cfg: BuildConfig, out: str, sample_clips: int = 200) -> dict:
    """Totals (``requests``, ``cached``, ``requests_to_pay``, tokens, ``cost_usd``: at the batch price with
    the openai-batch backend, ``sync_cost_usd``: at the synchronous price) and the same per task."""
    from stages.llm_client import SCHEMAS, SYSTEM, OpenAIAnnotator, ResponseCache

    a = cfg.annotator
    plan = plan_build(cfg)
    cache = ResponseCache(a.cache_dir or Path(out) / ANNOTATION_CACHE)
    params = {"model": a.model, "temperature": a.temperature, "max_tokens": a.max_tokens, "seed": cfg.seed,
              "structured_output": a.structured_output}  # fmt: skip
    ingested: dict[str, object] = {}  # unit id → its ingested tables, shared by the tasks that read them

    def tables_of(unit):
        if unit.unit_id not in ingested:
            ingested[unit.unit_id] = ingest(unit, cfg, out).tables
        return ingested[unit.unit_id]

    tasks = {}
    for name in a.tasks if a.backend != "none" else ():
        task = TASKS[name]
        units = [u for u in plan.units if (u.source_kind == "video") == (task.table == "video")]
        records = sum(len(u.record_ids) for u in units)
        template, version = load_prompt(a.prompts_dir, getattr(a, task.prompt_field))
        schema = SCHEMAS[task.kind](a.qa_per_clip)
        sampled, requests, prompt_tokens, hits = 0, 0, 0.0, 0
        for unit in units:
            if sampled >= sample_clips:
                break
            table = tables_of(unit).get(task.table)
            sampled += len(unit.record_ids)
            if table is None or not table.num_rows:
                continue
            for req in task.requests(table, template, a.qa_per_clip, {}):  # (no re-captions yet: see RECAPTION_CHARS)
                requests += 1
                extra = RECAPTION_CHARS if task.kind == "video_qa" else 0
                prompt_tokens += (len(SYSTEM) + len(req.prompt) + extra) / 4 + IMAGE_TOKENS * len(req.images)
                key = OpenAIAnnotator.cache_key(a.model, version, params, OpenAIAnnotator.messages_for(req), schema)
                hits += cache.get(key) is not None
        total = round(records * (requests / sampled if sampled else 0.0))
        to_pay = round(total * (1 - (hits / requests if requests else 0.0)))
        tasks[name] = {"records_planned": records, "records_sampled": sampled, "requests": total,
                       "cached": total - to_pay, "requests_to_pay": to_pay,
                       "prompt_tokens": round(to_pay * (prompt_tokens / requests if requests else 0)),
                       "completion_tokens": to_pay * min(a.max_tokens, _completion_tokens(task.kind, a.qa_per_clip))}  # fmt: skip
    totals = {k: sum(t[k] for t in tasks.values()) for k in ("requests", "cached", "requests_to_pay", "prompt_tokens",
                                                              "completion_tokens")}  # fmt: skip
    sync_cost = cost_usd(totals, a)
    cost = sync_cost  # with openai-batch, every request to pay for is asked through a batch, at the batch price
    if a.backend == "openai-batch":
        cost = cost_usd(totals | {"batch_prompt_tokens": totals["prompt_tokens"],
                                  "batch_completion_tokens": totals["completion_tokens"]}, a)  # fmt: skip
    motion_units = [u for u in plan.units if u.source_kind != "video"]
    return {"backend": a.backend, "model": a.model, "clips_planned": sum(len(u.record_ids) for u in motion_units),
            "clips_sampled": max((t["records_sampled"] for n, t in tasks.items() if TASKS[n].table == "motion"), default=0),
            **totals, "cost_usd": round(cost, 2), "sync_cost_usd": round(sync_cost, 2), "budget_usd": a.budget_usd,
            "tasks": tasks}  # fmt: skip
