"""The stage graph, declared: every stage with the columns it reads, the tables it writes, the counters it
reports (with the balances ``in = out + quarantined`` the manifest's reconciliation checks) and what it
needs to run; and for each source kind, its stages in run order. ``pipeline.units`` runs a unit by walking
its source's list; ``pipeline.manifest`` derives its reconciliation from the balances declared here;
``render_graph`` writes the graph that opens docs/architecture.md.

A stage's ``run`` takes the unit's :class:`UnitContext` and returns a ``StageResult`` (or None when it has
nothing to do in this unit: then it reports no counters). Tables a stage writes are added to the unit's;
a stage that reads a table and writes it again (``rewrites``: validation) replaces it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.config import BuildConfig
from pipeline.plan_units import WorkUnit
from pipeline.records import rows_table
from stages import StageResult
from stages.annotate import TASKS, AnnotationTask, annotate, load_prompt
from stages.caption_instructions import caption_instructions, video_caption_instructions
from stages.clip_stats import clip_stats
from stages.ingest_humanml3d import ingest_humanml3d

__all__ = ["PLANNER", "SOURCES", "STAGES", "Balance", "Resources", "Stage", "UnitContext", "ingest", "render_graph",
           "unit_resources"]  # fmt: skip


@dataclass(frozen=True)
class Balance:
    """``<inp> = <out> + <quarantined>``, checked as the reconciliation entry ``check`` over the counters
    summed across every stage that declares the same entry (all ingest stages count clips alike)."""

    check: str
    inp: str
    out: str
    quarantined: str
    only_if_any: bool = False  # the entry is listed only when something came in


@dataclass(frozen=True)
class Resources:
    """What one running instance of the stage needs: the unit's needs are the most of its stages'."""

    cpus: float = 1.0
    memory_mb: int = 512
    gpus: float = 0.0
    concurrency: int | None = None  # at most this many at once in a build (None: one per CPU)


@dataclass(frozen=True)
class Stage:
    name: str  # its counters' key in a unit's stats and the manifest's ``stages``
    run: Callable[[UnitContext], StageResult | None] | None  # None: not a unit stage (the planner)
    inputs: tuple[str, ...]  # ``table.column`` it reads
    outputs: tuple[str, ...]  # tables it writes
    counters: tuple[str, ...]  # what it counts, besides ``dropped_<reason>``
    balances: tuple[Balance, ...] = ()
    rows_out: dict[str, str] = field(default_factory=dict)  # table → the counter of the rows it adds to it
    resources: Resources = Resources()
    timer: str = ""  # the bucket of the unit's ``seconds`` its time goes to (default: its name)
    rewrites: bool = False  # replaces the unit's tables with its own (validation)
    prepare: Callable[[BuildConfig], None] | None = None  # at the start of each unit (a slow import's warm-up)


@dataclass
class UnitContext:
    """One unit's run: its record, config and output folder; the tables so far (parts in order, joined when
    read); the counters, rejects and seconds of its stages; ``shared``: a memo for the unit's stages."""

    unit: WorkUnit
    cfg: BuildConfig
    out: str
    parts: dict[str, list[pa.Table]] = field(default_factory=dict)
    counters: dict[str, dict] = field(default_factory=dict)
    rejects: list = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    untimed: float = 0.0  # seconds a stage spent waiting on a process-wide warm-up (kept out of its timer)
    shared: dict = field(default_factory=dict)

    def table(self, name: str) -> pa.Table | None:
        parts = self.parts.get(name)
        if not parts:
            return None
        if len(parts) > 1:
            self.parts[name] = [pa.concat_tables(parts)]
        return self.parts[name][0]

    def tables(self) -> dict[str, pa.Table]:
        return {name: self.table(name) for name in list(self.parts) if self.parts[name]}

    def rows(self, name: str) -> pa.Table | None:
        """The table, when it has rows."""
        t = self.table(name)
        return t if t is not None and t.num_rows else None


# --- what each stage does in a unit ------------------------------------------------------------------------


def _ids_batch(unit: WorkUnit) -> pa.Table:
    return pa.table({"motion_id": list(unit.record_ids), "split": [unit.split] * len(unit.record_ids)})


def _run_ingest_humanml3d(ctx: UnitContext) -> StageResult:
    return ingest_humanml3d(_ids_batch(ctx.unit), ctx.cfg.ingest, root=ctx.unit.source_root)


def _run_ingest_amass(ctx: UnitContext) -> StageResult:
    from stages.ingest_smpl import body_models, ingest_amass  # torch and smplx: only for SMPL sources

    cfg = ctx.cfg
    return ingest_amass(rows_table(ctx.unit.rows), cfg.ingest, root=ctx.unit.source_root, models=body_models(cfg.smpl),
                        texts=cfg.amass.texts)  # fmt: skip


def _run_ingest_motionx(ctx: UnitContext) -> StageResult:
    from stages.ingest_smpl import body_models, ingest_motionx  # torch and smplx: only for SMPL sources

    cfg = ctx.cfg
    return ingest_motionx(_ids_batch(ctx.unit), cfg.ingest, root=ctx.unit.source_root, models=body_models(cfg.smpl),
                          motions=cfg.motionx.motions, texts=cfg.motionx.texts, fps=cfg.motionx.fps)  # fmt: skip


def _run_ingest_video(ctx: UnitContext) -> StageResult:
    from stages.ingest_smpl import body_models  # torch and smplx: only for videos that come with SMPL-X
    from stages.ingest_video import ingest_video  # the video decoders

    cfg, batch = ctx.cfg, rows_table(ctx.unit.rows)
    models = body_models(cfg.smpl) if any(r.smpl for r in ctx.unit.rows) else None
    return ingest_video(batch, cfg.frames, cfg.align, cfg.ingest, root=ctx.unit.source_root, models=models,
                        smpl_fps=cfg.video.smpl_fps)  # fmt: skip


def _run_captions(ctx: UnitContext) -> StageResult | None:
    motion = ctx.table("motion")
    if not ctx.cfg.instructions.caption_conversations or motion is None:
        return None
    return caption_instructions(motion, seed=ctx.cfg.seed)


def _run_video_captions(ctx: UnitContext) -> StageResult | None:
    video = ctx.table("video")
    if not ctx.cfg.instructions.caption_conversations or video is None:
        return None
    return video_caption_instructions(video, seed=ctx.cfg.seed)


def _annotation_runner(name: str, task: AnnotationTask) -> Callable[[UnitContext], StageResult | None]:
    """The run of one declared annotation task: the same stage (``stages.annotate.annotate``) for every task."""

    def run(ctx: UnitContext) -> StageResult | None:
        from pipeline.annotation import make_annotator  # (the LLM client: only in units that annotate)

        a, table = ctx.cfg.annotator, ctx.rows(task.table)
        if name not in a.tasks or a.backend == "none" or table is None:
            return None
        template, version = load_prompt(a.prompts_dir, getattr(a, task.prompt_field))
        annotator = make_annotator(ctx.cfg, ctx.out, version, job=f"{ctx.unit.unit_id}.{name}")
        return annotate(table, task, a, annotator=annotator, template=template, prompt_version=version,
                        seed=ctx.cfg.seed, shared=ctx.shared)  # fmt: skip

    return run


def _preload_validation(cfg: BuildConfig) -> None:
    # with an LLM annotator the import is noise next to the requests, and a thread holding the GIL for
    # seconds would delay request sends, blurring the rate limit's spacing
    if cfg.validation.enabled and cfg.annotator.backend not in ("openai", "openai-batch"):
        # (great-expectations: seconds of import, started here in the background)
        from stages.validate import preload

        preload()


def _run_validate(ctx: UnitContext) -> StageResult | None:
    from stages.validate import engine_ready, setup_seconds, validate_tables  # great-expectations

    tables = ctx.tables()
    if not ctx.cfg.validation.enabled or not tables:
        return None
    ctx.untimed += engine_ready()  # (the import's time, in validate_setup below)
    result = validate_tables(tables, ctx.cfg, source=ctx.unit.source_kind)
    setup = setup_seconds()  # once per worker process: the great-expectations import's CPU time
    if setup:
        ctx.seconds["validate_setup"] = setup
    return result


def _run_clip_stats(ctx: UnitContext) -> StageResult | None:
    motion = ctx.rows("motion")
    return None if motion is None else clip_stats(motion)


# --- the declarations --------------------------------------------------------------------------------------

_CLIPS = (Balance("clips", "clips_in", "clips_out", "clips_quarantined"),
          Balance("subclips", "subclips_in", "subclips_out", "subclips_quarantined"),
          Balance("captions", "captions_in", "captions_out", "captions_quarantined"))  # fmt: skip
_CLIP_COUNTERS = tuple(c for b in _CLIPS for c in (b.inp, b.out, b.quarantined)) + ("rows_out",)
_MOTION_COLUMNS = ("motion.motion_id", "motion.parent_id", "motion.split", "motion.texts", "motion.fps", "motion.joints")
_SMPL = Resources(cpus=1.0, memory_mb=2048)  # a body model's forward pass over a clip's frames
# (batch_*: the share of the requests and tokens asked through a batch API, at the batch price)
_USAGE = ("requests", "retries", "reasks", "cache_hits", "prompt_tokens", "completion_tokens", "batch_requests",
          "batch_prompt_tokens", "batch_completion_tokens")

PLANNER = Stage("plan", None, (), ("quarantine",), ("listed", "planned", "quarantined", "videos_listed",
                "videos_planned", "videos_quarantined", "videos_unaligned", "duplicate_listings", "units"),
                (Balance("plan", "listed", "planned", "quarantined"),
                 Balance("plan_videos", "videos_listed", "videos_planned", "videos_quarantined")))  # fmt: skip


def _ingest_stage(kind: str, run, inputs: tuple[str, ...], resources: Resources = Resources()) -> Stage:
    return Stage(f"ingest_{kind}", run, inputs, ("motion", "quarantine"), _CLIP_COUNTERS, _CLIPS,
                 {"motion": "rows_out"}, resources, timer="ingest")  # fmt: skip


def _task_stage(name: str, task: AnnotationTask) -> Stage:
    item = task.item  # what one request is about: a clip or a video
    balances = (Balance(task.check, f"{item}_in", task.done, f"{item}_quarantined"),)
    if task.pair_counters:
        balances += (Balance(name, *task.pair_counters),)
    columns = _MOTION_COLUMNS if task.table == "motion" else ("video.video_id", "video.split", "video.captions",
                                                              "video.frames", "video.frame_timestamps")  # fmt: skip
    return Stage(task.stage, _annotation_runner(name, task), columns, ("instruction", "quarantine"),
                 (f"{item}_in", task.done, f"{item}_quarantined", "instructions_out", *task.pair_counters, *_USAGE),
                 balances, {"instruction": "instructions_out"}, Resources(cpus=1.0, memory_mb=512),
                 timer="instructions")  # fmt: skip


_VALIDATED = tuple(Balance(f"validate_{t}", f"{t}_in", f"{t}_out", f"{t}_quarantined", only_if_any=True)
                   for t in ("motion", "video", "instruction"))  # fmt: skip
STAGES: dict[str, Stage] = {s.name: s for s in (
    _ingest_stage("humanml3d", _run_ingest_humanml3d, ("plan.motion_id", "plan.split")),
    _ingest_stage("amass", _run_ingest_amass, ("plan.new_name", "plan.source_path", "plan.start_frame",
                                               "plan.end_frame", "plan.split", "plan.m_split"), _SMPL),
    _ingest_stage("motionx", _run_ingest_motionx, ("plan.motion_id", "plan.split"), _SMPL),
    Stage("ingest_video", _run_ingest_video, ("plan.video_id", "plan.path", "plan.captions", "plan.split",
                                              "plan.start", "plan.end", "plan.offset", "plan.motion_id",
                                              "plan.motion_frames", "plan.smpl"),
          ("video", "motion", "quarantine"), (*_CLIP_COUNTERS, "videos_in", "videos_out", "videos_quarantined"),
          (*_CLIPS, Balance("videos", "videos_in", "videos_out", "videos_quarantined")),
          {"motion": "rows_out", "video": "videos_out"}, _SMPL, timer="ingest"),
    Stage("caption_instructions", _run_captions, ("motion.motion_id", "motion.split", "motion.texts"),
          ("instruction",), ("captions_in", "instructions_out"), (), {"instruction": "instructions_out"},
          timer="instructions"),
    Stage("video_caption_instructions", _run_video_captions, ("video.video_id", "video.motion_id", "video.split",
                                                              "video.captions"),
          ("instruction",), ("captions_in", "instructions_out"), (), {"instruction": "instructions_out"},
          timer="instructions"),
    *(_task_stage(name, task) for name, task in TASKS.items()),
    Stage("validate", _run_validate, ("motion.*", "video.*", "instruction.*"), ("motion", "video", "instruction",
                                                                                 "quarantine"),
          tuple(f"{t}_{c}" for t in ("motion", "video", "instruction") for c in ("in", "out", "quarantined")),
          _VALIDATED, resources=Resources(cpus=1.0, memory_mb=1024), rewrites=True, prepare=_preload_validation),
    Stage("clip_stats", _run_clip_stats, ("motion.motion_id", "motion.split", "motion.fps", "motion.joints"),
          ("clip_stats",), ("clips_in", "clips_out", "clips_quarantined"), (Balance("clip_stats", "clips_in", "clips_out", "clips_quarantined"),),
          {"clip_stats": "clips_out"}, Resources(cpus=1.0, memory_mb=256)),
)}  # fmt: skip

# The link pass (``pipeline.links``) runs once over all units, after them; it counts as a stage too.
LINK = Stage("link", None, ("video.motion_id", "motion.motion_id", "quarantine.*"), ("video", "instruction",
                                                                                     "quarantine"),
             tuple(f"{t}_{c}" for t in ("video", "instruction") for c in ("in", "out", "quarantined")),
             tuple(Balance(f"link_{t}", f"{t}_in", f"{t}_out", f"{t}_quarantined", only_if_any=True)
                   for t in ("video", "instruction")))  # fmt: skip

_AFTER = ("validate", "clip_stats")
_MOTION_TEXT = ("caption_instructions", *(t.stage for t in TASKS.values() if t.table == "motion"))
SOURCES: dict[str, tuple[str, ...]] = {
    "humanml3d": ("ingest_humanml3d", *_MOTION_TEXT, *_AFTER),
    "amass": ("ingest_amass", *_MOTION_TEXT, *_AFTER),
    "motionx": ("ingest_motionx", *_MOTION_TEXT, *_AFTER),
    "video": ("ingest_video", "caption_instructions", "video_caption_instructions",
              *(t.stage for t in TASKS.values()), *_AFTER),
}  # fmt: skip


def stages_of(kind: str) -> tuple[Stage, ...]:
    """The stages a unit of source ``kind`` runs, in order."""
    return tuple(STAGES[name] for name in SOURCES[kind])


def all_stages() -> tuple[Stage, ...]:
    """Every declared stage, the planner and the link pass included (the reconciliation's counters)."""
    return (PLANNER, *STAGES.values(), LINK)


def unit_resources(kind: str) -> Resources:
    """What a unit of ``kind`` needs: the most any of its stages needs (they run one after another)."""
    declared = [s.resources for s in stages_of(kind)]
    limits = [r.concurrency for r in declared if r.concurrency]
    return Resources(max(r.cpus for r in declared), max(r.memory_mb for r in declared), max(r.gpus for r in declared),
                     min(limits) if limits else None)  # fmt: skip


def run_stage(stage: Stage, ctx: UnitContext) -> None:
    """Run ``stage`` on the unit and fold its result in: counters under its name, rejects, tables (added, or
    replacing the unit's when the stage rewrites them), its time under its timer."""
    t0, untimed = time.perf_counter(), ctx.untimed
    result = stage.run(ctx)
    if result is not None:
        ctx.counters[stage.name] = dict(result.counters)
        ctx.rejects += result.rejects
        if stage.rewrites:
            ctx.parts = {name: [table] for name, table in result.tables.items()}
        else:
            for name, table in result.tables.items():
                ctx.parts.setdefault(name, []).append(table)
    timer = stage.timer or stage.name
    if result is not None or timer in ctx.seconds or stage.timer:
        spent = time.perf_counter() - t0 - (ctx.untimed - untimed)
        ctx.seconds[timer] = ctx.seconds.get(timer, 0.0) + spent


def ingest(unit: WorkUnit, cfg: BuildConfig, out: str = "") -> StageResult:
    """The first stage of ``unit``'s source on its own (``movid build --dry-run`` samples units with it)."""
    return stages_of(unit.source_kind)[0].run(UnitContext(unit, cfg, out))


def render_graph() -> str:
    """The stage graph as text, source by source: each stage with what it reads and writes (the block that
    opens docs/architecture.md; ``tests/pipeline/test_stage_graph.py`` checks the two agree)."""
    lines = []
    for kind, names in SOURCES.items():
        lines.append(f"{kind} source → plan (WorkUnit rows) →")
        for name in names:
            s = STAGES[name]
            tables = list(dict.fromkeys(c.split(".")[0] for c in s.inputs))
            lines.append(f"  {name:<28} reads {', '.join(tables):<26} → writes {', '.join(s.outputs)}")
        lines.append("")
    lines.append("after all units: link (video, instruction → quarantine); commit → OUT/<table>/<split>/part-*.parquet,")
    lines.append("  manifest.json (counts, stage counters, reconciliation from the declared balances), README.md")
    return "\n".join(lines) + "\n"
