"""movid's build config: the typed tree of dataclasses (defaults embedded), loaded from YAML and overridden with
dotted ``--set key=value`` by the one config loader (``schemas/config_schema.py``, shared with the trainer's
config); every error names the key.

Every number in the tree is checked on load: it must be finite and, unless its field declares otherwise, >= 0;
a field declares tighter bounds next to itself — ``num(20.0, gt=0)`` — so a new key is checked without a list
to keep. The checks that read files or compare fields are ``pipeline/config_checks.py``; the hashes that make
a build's identity are ``pipeline/config_identity.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from configs import find_preset
from pipeline import config_checks
from pipeline.config_checks import DEFAULT_PROMPTS, PATH_KEYS, SOURCE_KINDS
from pipeline.config_identity import annotation_digests, config_hash
from schemas.config_schema import ConfigError, check_numbers, from_dict, load_tree, num

__all__ = [
    "BuildConfig",
    "ConfigError",
    "DEFAULT_PROMPTS",
    "SOURCE_KINDS",
    "SourceSpec",
    "annotation_digests",
    "build_config_from_dict",
    "config_hash",
    "config_to_dict",
    "load_config",
    "parse_source",
]


@dataclass
class SourceSpec:
    kind: str = "humanml3d"
    path: str = ""


@dataclass
class RayConfig:
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001": join a cluster
    num_cpus: int | None = num(None, ge=1)  # local Ray only; None = all cores
    object_store_memory: int | None = num(256 * 1024**2, ge=1)  # local Ray only; the pipeline passes no big objects
    max_retries: int = 3  # re-runs of a unit whose worker process died (data errors are never retried)
    max_in_flight: int | None = num(None, ge=1)  # units submitted at once; None = 2 × cluster CPUs
    # Environment variables to pass to the workers of a cluster given by address (they do not inherit the
    # driver's). Opt-in: Ray keeps them in the job's runtime environment, visible to who can see the job.
    forward_env: list[str] = field(default_factory=list)


@dataclass
class LocalConfig:
    # executor=local: 1 runs the units in this process, in order (for debugging); N > 1 runs them in N
    # processes forked from it (pipeline.local_pool); 0: one per CPU this process may use
    workers: int = num(1, ge=0, le=1024)


@dataclass
class PlanConfig:
    unit_size: int = num(256, ge=1)  # source clips per work unit


@dataclass
class IngestConfig:
    fps: float = num(20.0, gt=0, le=1000)
    min_frames: int = num(40, ge=1)  # HumanML3D trains on clips of 40–196 frames
    max_frames: int = num(196, ge=1)
    subclips: bool = True  # a caption with a time span yields its own sub-clip row, as HumanML3D's loader
    # Folders outside a source's root that its files may resolve into (through symlinks or '..'); by default
    # every file a source names must lie inside its root (or amass.texts / amass.splits / smpl.model_dir).
    allowed_roots: tuple[str, ...] = ()  # (a tuple: the section stays hashable, for the suites keyed by it)
    # Caps on one record (each names itself as the quarantine reason):
    max_file_frames: int = num(100_000, ge=1)  # frames a motion file may hold (too_many_frames), from its header
    max_caption_chars: int = num(1000, ge=1)  # characters of one caption (caption_too_long)
    max_captions: int = num(64, ge=1)  # caption lines of one clip or video (too_many_captions)
    max_text_bytes: int = num(16 * 1024**2, ge=1)  # size of one caption file (text_too_large)


@dataclass
class SmplConfig:
    model_dir: str | None = None  # folder with SMPLH_{MALE,FEMALE,NEUTRAL}.npz / SMPLX_*.npz (licensed; not shipped)
    trusted_pickle: bool = False  # allow .pkl models (unpickling runs code)
    num_betas: int = num(10, ge=1, le=300)  # HumanML3D uses 10 shape coefficients (SMPL-X has at most 300)


@dataclass
class AmassConfig:
    index: str | None = None  # HumanML3D's index.csv; default <source>/index.csv
    splits: str | None = None  # folder with train/val/test.txt; default <source>
    texts: str | None = None  # HumanML3D's texts/ folder (captions); none: motions without captions


@dataclass
class MotionXConfig:
    motions: str = "motion_data/smplx_322"  # under the source: <id>.npy, T × 322 SMPL-X
    texts: str | None = "texts/semantic_label"  # under the source: <id>.txt; none: motions without captions
    fps: float = num(30.0, gt=0, le=1000)


@dataclass
class VideoConfig:
    metadata: str = "metadata.jsonl"  # under the source: JSONL or CSV (path, captions, motion_id, smpl, start, end, split, offset)
    smpl_fps: float | None = num(None, gt=0, le=1000)  # frame rate of per-frame SMPL-X files; default: the video's


@dataclass
class FramesConfig:
    mode: str = "uniform"  # uniform: num_frames spread over the segment; fps: one every 1/sample_fps s
    num_frames: int = num(8, ge=1, le=1024)
    sample_fps: float = num(1.0, gt=0, le=60)
    short_side: int = num(224, ge=16, le=4096)  # (the stored frames; an upper bound keeps a typo from costing GBs)
    jpeg_quality: int = num(90, ge=1, le=100)
    # Caps on one video, from its probe before any frame is decoded (each names itself as the quarantine reason):
    max_pixels: int = num(3840 * 2160, ge=1)  # width × height of a frame (too_many_pixels): 4K UHD
    max_video_frames: int = num(216_000, ge=1)  # frames in the file (too_many_video_frames): an hour at 60 fps
    max_video_seconds: float = num(3600.0, gt=0)  # duration of the file (video_too_long)


@dataclass
class AlignConfig:
    tolerance_seconds: float = num(0.5, ge=0)  # a video and its motion whose lengths differ more go to quarantine


@dataclass
class AnnotatorConfig:
    # offline (embedded, no network) | openai (any OpenAI-compatible endpoint) | openai-batch (its files + batches
    # API: each unit's requests as one batch, at the batch price; docs/cluster.md) | none
    backend: str = "offline"
    base_url: str | None = None  # e.g. http://localhost:8000/v1 for vLLM / llama.cpp; none = OpenAI
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # the name of the variable; the key itself never enters the config
    max_in_flight: int = num(8, ge=1)  # concurrent requests per worker
    http_client: str = "aiohttp"  # the openai client's HTTP layer: aiohttp (openai[aiohttp], less CPU) | httpx
    requests_per_minute: float | None = num(None, gt=0)  # for the whole build, all workers together
    tokens_per_minute: float | None = num(None, gt=0)  # likewise (prompt estimate + max_tokens per request)
    structured_output: str = "json_schema"  # json_schema (OpenAI, vLLM) | json_object (llama.cpp server) | none
    temperature: float = num(0.7, le=2)  # (OpenAI's range: 0–2)
    max_tokens: int = num(800, ge=1)
    # a longer prompt (text, not images) is quarantined as prompt_too_long, never sent (~25k tokens)
    max_prompt_chars: int = num(100_000, ge=1)
    timeout_s: float = num(60.0, gt=0)
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    qa_per_clip: int = num(6, ge=1, le=100)
    # caption / qa: a detailed caption / QA per full motion clip; video_caption: a re-caption and QA per video
    # from its frames (vision model); video_qa: QA per video from that re-caption and its labels (text model)
    tasks: list[str] = field(default_factory=lambda: ["caption", "qa", "video_caption", "video_qa"])
    caption_prompt: str = "motion_caption.v1"
    prompt: str = "motion_qa.v1"
    video_prompt: str = "video_recaption.v1"  # vision re-captioning + QA from the sampled frames
    video_qa_prompt: str = "video_qa.v1"  # QA from a video's re-caption and labels
    prompts_dir: str | None = None  # default: the prompts packaged with movid (configs/prompts)
    cache_dir: str | None = None  # default: OUT/.annotation_cache (kept by --overwrite)
    price_per_1k_prompt_tokens: float = 0.0  # USD, for the manifest's cost
    price_per_1k_completion_tokens: float = 0.0
    budget_usd: float | None = None  # stop (resumably) once finished units have spent this much
    # openai-batch: how often a unit asks for its batch's status, and how long it waits before it stops the
    # build (resumable: a rerun polls the same batch, nothing is submitted again)
    batch_poll_s: float = num(30.0, gt=0, le=3600)
    batch_max_wait_s: float = num(26 * 3600.0, gt=0, le=7 * 24 * 3600)
    batch_retry: str = "sync"  # the lines a batch failed or left unanswered (expired): sync | batch (a new one) | none
    batch_discount: float = num(0.5, ge=0, le=1)  # the batch price as a share of the configured prices


@dataclass
class InstructionsConfig:
    caption_conversations: bool = True


@dataclass
class PlausibilityConfig:
    """Motion plausibility limits (per clip; joints in metres, y up, floor at y = 0 as HumanML3D places it)."""

    action: str = "flag"  # flag: keep the clip with motion.quality_flags set | quarantine | off
    max_joint_speed_m_s: float = 25.0  # any joint, frame to frame (a sprinter's swinging foot stays below)
    max_root_speed_m_s: float = 12.0  # pelvis over the ground; faster is a teleport / tracking jump
    max_ground_penetration_m: float = 0.05  # lowest foot joint below the floor
    contact_height_m: float = 0.05  # a foot this close to the floor in two frames is in contact
    skate_speed_m_s: float = 0.5  # a foot in contact moving faster than this over the ground slides
    max_foot_skate_ratio: float = num(0.3, le=1)  # share of contact frames that slide
    max_bone_length_change: float = 0.05  # (max - min) / median length of any bone over the clip


@dataclass
class ValidateConfig:
    enabled: bool = True  # record-level suites (great-expectations) on every unit's tables
    fail_on_table_errors: bool = True  # duplicate ids, split leakage, dangling references fail the build
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)


@dataclass
class ShardConfig:
    max_rows: int = num(1000, ge=1)
    compression: str = "zstd"
    row_group_rows: int = num(128, ge=1)


@dataclass
class BenchQuotas:
    """Questions per QA category in the bench (MoVid-Bench's motion counts, 700 in all), scaled down to
    what the test split holds; 0 leaves a category out."""

    body_part: int = 205
    sequentiality: int = 171
    direction: int = 140
    reasoning: int = 148
    hallucination: int = 36
    # not a MoVid-Bench category: its own category, reported apart (model/bench.py); 200 so that its 95 %
    # interval is about ±7 points
    counting: int = 200


@dataclass
class VideoBenchQuotas(BenchQuotas):
    """MoVid-Bench's video counts (650 in all)."""

    body_part: int = 167
    sequentiality: int = 216
    direction: int = 43
    reasoning: int = 185
    hallucination: int = 39


@dataclass
class BenchConfig:
    enabled: bool = True  # write OUT/bench/part-NNNNN.parquet (model/bench.py) at commit
    seed: int | None = None  # picks the questions; none = the build's seed
    motion: BenchQuotas = field(default_factory=BenchQuotas)
    video: VideoBenchQuotas = field(default_factory=VideoBenchQuotas)


@dataclass
class BuildConfig:
    seed: int = num(0, le=2**63 - 1)  # (stored in int64 columns and metadata)
    executor: str = "ray"  # ray | local
    sources: list[SourceSpec] = field(default_factory=list)
    ray: RayConfig = field(default_factory=RayConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    smpl: SmplConfig = field(default_factory=SmplConfig)
    amass: AmassConfig = field(default_factory=AmassConfig)
    motionx: MotionXConfig = field(default_factory=MotionXConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    annotator: AnnotatorConfig = field(default_factory=AnnotatorConfig)
    instructions: InstructionsConfig = field(default_factory=InstructionsConfig)
    validation: ValidateConfig = field(default_factory=ValidateConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

    def validate(self) -> None:
        check_numbers(self)  # every number: finite, within its field's bounds
        config_checks.check_build_config(self)


def build_config_from_dict(tree: dict) -> BuildConfig:
    """The config a mapping describes (e.g. a manifest's ``config``), typed and number-checked, not validated
    against the file system (its sources may have moved)."""
    return from_dict(BuildConfig, tree)


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def parse_source(text: str) -> SourceSpec:
    kind, sep, path = text.partition("=")
    if not sep or not kind or not path:
        raise ConfigError(f"--source {text!r}: expected KIND=PATH, KIND one of {', '.join(SOURCE_KINDS)}")
    return SourceSpec(kind=kind.strip(), path=path.strip())


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    sources: list[str] | None = None,
) -> BuildConfig:
    """Defaults ← YAML file (a path, or a packaged preset's name: ``demo``) ← ``--set key=value`` overrides ←
    ``--source KIND=PATH``; then validate."""
    preset = (find_preset(path) or path) if path is not None else None
    cfg = from_dict(BuildConfig, load_tree(preset, overrides))
    if sources:
        cfg.sources = [parse_source(s) for s in sources]
    for src in cfg.sources:
        src.path = str(Path(src.path).expanduser().resolve())
    cfg.annotator.prompts_dir = cfg.annotator.prompts_dir or str(DEFAULT_PROMPTS)
    for section_name, key in PATH_KEYS:
        section = getattr(cfg, section_name)
        if getattr(section, key):
            setattr(section, key, str(Path(getattr(section, key)).expanduser().resolve()))
    cfg.ingest.allowed_roots = tuple(str(Path(p).expanduser().resolve()) for p in cfg.ingest.allowed_roots)
    cfg.validate()
    return cfg

