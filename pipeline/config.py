"""movid's one typed config tree: dataclasses with defaults (the embedded defaults), loaded from YAML and
overridden with dotted ``--set key=value``; every error names the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = [
    "BuildConfig",
    "ConfigError",
    "SOURCE_KINDS",
    "SourceSpec",
    "config_hash",
    "config_to_dict",
    "load_config",
    "parse_source",
]

SOURCE_KINDS = ("humanml3d", "amass", "motionx", "video")
DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "prompts"
SUPPORTED_SOURCE_KINDS = ("humanml3d", "amass", "motionx", "video")
DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "prompts"


class ConfigError(ValueError):
    """A config problem found before any work starts; the message names the key or path."""


@dataclass
class SourceSpec:
    kind: str = "humanml3d"
    path: str = ""


@dataclass
class RayConfig:
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001": join a cluster
    num_cpus: int | None = None  # local Ray only; None = all cores
    object_store_memory: int | None = 256 * 1024**2  # local Ray only; the pipeline passes no big objects
    max_retries: int = 3  # re-runs of a unit whose worker process died (data errors are never retried)
    max_in_flight: int | None = None  # units submitted at once; None = 2 × cluster CPUs
    # Environment variables to pass to the workers of a cluster given by address (they do not inherit the
    # driver's). Opt-in: Ray keeps them in the job's runtime environment, visible to who can see the job.
    forward_env: list[str] = field(default_factory=list)


@dataclass
class PlanConfig:
    unit_size: int = 256  # source clips per work unit


@dataclass
class IngestConfig:
    fps: float = 20.0
    min_frames: int = 40  # HumanML3D trains on clips of 40–196 frames
    max_frames: int = 196
    subclips: bool = True  # a caption with a time span yields its own sub-clip row, as HumanML3D's loader


@dataclass
class SmplConfig:
    model_dir: str | None = None  # folder with SMPLH_{MALE,FEMALE,NEUTRAL}.npz / SMPLX_*.npz (licensed; not shipped)
    trusted_pickle: bool = False  # allow .pkl models (unpickling runs code)
    num_betas: int = 10  # HumanML3D uses 10 shape coefficients


@dataclass
class AmassConfig:
    index: str | None = None  # HumanML3D's index.csv; default <source>/index.csv
    splits: str | None = None  # folder with train/val/test.txt; default <source>
    texts: str | None = None  # HumanML3D's texts/ folder (captions); none: motions without captions


@dataclass
class MotionXConfig:
    motions: str = "motion_data/smplx_322"  # under the source: <id>.npy, T × 322 SMPL-X
    texts: str | None = "texts/semantic_label"  # under the source: <id>.txt; none: motions without captions
    fps: float = 30.0


@dataclass
class VideoConfig:
    metadata: str = "metadata.jsonl"  # under the source: JSONL or CSV (path, captions, motion_id, smpl, start, end, split, offset)
    smpl_fps: float | None = None  # frame rate of per-frame SMPL-X files; default: the video's


@dataclass
class FramesConfig:
    mode: str = "uniform"  # uniform: num_frames spread over the segment; fps: one every 1/sample_fps s
    num_frames: int = 8
    sample_fps: float = 1.0
    short_side: int = 224
    jpeg_quality: int = 90


@dataclass
class AlignConfig:
    tolerance_seconds: float = 0.5  # a video and its motion whose lengths differ more go to quarantine


@dataclass
class AnnotatorConfig:
    backend: str = "offline"  # offline (embedded, no network) | openai (any OpenAI-compatible endpoint) | none
    base_url: str | None = None  # e.g. http://localhost:8000/v1 for vLLM / llama.cpp; none = OpenAI
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # the name of the variable; the key itself never enters the config
    max_in_flight: int = 8  # concurrent requests per worker
    http_client: str = "aiohttp"  # the openai client's HTTP layer: aiohttp (openai[aiohttp], less CPU) | httpx
    requests_per_minute: float | None = None  # for the whole build, all workers together
    tokens_per_minute: float | None = None  # likewise (prompt estimate + max_tokens per request)
    structured_output: str = "json_schema"  # json_schema (OpenAI, vLLM) | json_object (llama.cpp server) | none
    temperature: float = 0.7
    max_tokens: int = 800
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    qa_per_clip: int = 6
    # caption / qa: a detailed caption / QA per full motion clip; video_caption: a re-caption and QA per video
    # from its frames (vision model); video_qa: QA per video from that re-caption and its labels (text model)
    tasks: list[str] = field(default_factory=lambda: ["caption", "qa", "video_caption", "video_qa"])
    caption_prompt: str = "motion_caption.v1"
    prompt: str = "motion_qa.v1"
    video_prompt: str = "video_recaption.v1"  # vision re-captioning + QA from the sampled frames
    video_qa_prompt: str = "video_qa.v1"  # QA from a video's re-caption and labels
    prompts_dir: str | None = None  # default: configs/prompts of this repository
    cache_dir: str | None = None  # default: OUT/.annotation_cache (kept by --overwrite)
    price_per_1k_prompt_tokens: float = 0.0  # USD, for the manifest's cost
    price_per_1k_completion_tokens: float = 0.0
    budget_usd: float | None = None  # stop (resumably) once finished units have spent this much


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
    max_foot_skate_ratio: float = 0.3  # share of contact frames that slide
    max_bone_length_change: float = 0.05  # (max - min) / median length of any bone over the clip


@dataclass
class ValidateConfig:
    enabled: bool = True  # record-level suites (great-expectations) on every unit's tables
    fail_on_table_errors: bool = True  # duplicate ids, split leakage, dangling references fail the build
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)


@dataclass
class ShardConfig:
    max_rows: int = 1000
    compression: str = "zstd"
    row_group_rows: int = 128


@dataclass
class BenchQuotas:
    """Questions per QA category in the bench (MoVid-Bench's motion counts, 700 in all), scaled down to
    what the test split holds; 0 leaves a category out."""

    body_part: int = 205
    sequentiality: int = 171
    direction: int = 140
    reasoning: int = 148
    hallucination: int = 36
    counting: int = 0  # not a MoVid-Bench category


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
    seed: int = 0
    executor: str = "ray"  # ray | local
    sources: list[SourceSpec] = field(default_factory=list)
    ray: RayConfig = field(default_factory=RayConfig)
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
        if self.executor not in ("ray", "local"):
            raise ConfigError(f"executor: must be 'ray' or 'local', got {self.executor!r}")
        if self.plan.unit_size < 1:
            raise ConfigError(f"plan.unit_size: must be >= 1, got {self.plan.unit_size}")
        if self.shard.max_rows < 1:
            raise ConfigError(f"shard.max_rows: must be >= 1, got {self.shard.max_rows}")
        if self.shard.row_group_rows < 1:
            raise ConfigError(f"shard.row_group_rows: must be >= 1, got {self.shard.row_group_rows}")
        if self.shard.compression not in ("zstd", "snappy", "gzip", "lz4", "none"):
            raise ConfigError(f"shard.compression: unsupported codec {self.shard.compression!r}")
        if self.ingest.fps <= 0:
            raise ConfigError(f"ingest.fps: must be > 0, got {self.ingest.fps}")
        if not 1 <= self.ingest.min_frames <= self.ingest.max_frames:
            raise ConfigError(
                f"ingest.min_frames/ingest.max_frames: need 1 <= min <= max, got "
                f"{self.ingest.min_frames}/{self.ingest.max_frames}"
            )
        if self.frames.mode not in ("uniform", "fps"):
            raise ConfigError(f"frames.mode: must be 'uniform' or 'fps', got {self.frames.mode!r}")
        if self.frames.num_frames < 1 or self.frames.short_side < 16 or self.frames.sample_fps <= 0:
            raise ConfigError("frames.num_frames >= 1, frames.short_side >= 16 and frames.sample_fps > 0 are required")
        if not 1 <= self.frames.jpeg_quality <= 100:
            raise ConfigError(f"frames.jpeg_quality: 1..100, got {self.frames.jpeg_quality}")
        if self.annotator.backend not in ("offline", "openai", "none"):
            raise ConfigError(f"annotator.backend: must be offline, openai or none, got {self.annotator.backend!r}")
        if self.annotator.http_client not in ("aiohttp", "httpx"):
            raise ConfigError(f"annotator.http_client: aiohttp or httpx, got {self.annotator.http_client!r}")
        if self.annotator.structured_output not in ("json_schema", "json_object", "none"):
            raise ConfigError(f"annotator.structured_output: json_schema, json_object or none, got "
                              f"{self.annotator.structured_output!r}")  # fmt: skip
        from stages.annotate import TASKS

        if not set(self.annotator.tasks) <= set(TASKS):
            raise ConfigError(f"annotator.tasks: each of {', '.join(TASKS)}; got {self.annotator.tasks}")
        if self.annotator.max_in_flight < 1 or self.annotator.qa_per_clip < 1:
            raise ConfigError("annotator.max_in_flight and annotator.qa_per_clip must be >= 1")
        for task in self.annotator.tasks if self.annotator.backend != "none" else ():
            name = TASKS[task].prompt_field
            prompt = Path(self.annotator.prompts_dir or DEFAULT_PROMPTS) / f"{getattr(self.annotator, name)}.txt"
            if not prompt.is_file():
                raise ConfigError(f"annotator.{name}: {str(prompt)!r} does not exist")
        if self.validation.plausibility.action not in ("flag", "quarantine", "off"):
            raise ConfigError(f"validation.plausibility.action: flag, quarantine or off, got "
                              f"{self.validation.plausibility.action!r}")  # fmt: skip
        if any(v < 0 for q in (self.bench.motion, self.bench.video) for v in dataclasses.asdict(q).values()):
            raise ConfigError("bench.motion.* and bench.video.*: quotas must be >= 0")
        if self.ray.max_retries < 0:
            raise ConfigError(f"ray.max_retries: must be >= 0, got {self.ray.max_retries}")
        kinds_seen = set()
        for i, src in enumerate(self.sources):
            if src.kind not in SOURCE_KINDS:
                raise ConfigError(f"sources[{i}].kind: unknown source kind {src.kind!r}; one of {SOURCE_KINDS}")
            if src.kind not in SUPPORTED_SOURCE_KINDS:
                raise ConfigError(
                    f"sources[{i}].kind: source kind {src.kind!r} is not supported by this version "
                    f"(supported: {', '.join(SUPPORTED_SOURCE_KINDS)})"
                )
            if src.kind in kinds_seen:
                raise ConfigError(f"sources[{i}]: a second {src.kind!r} source; give one path per kind")
            kinds_seen.add(src.kind)
            if not src.path:
                raise ConfigError(f"sources[{i}].path: empty")
            if not Path(src.path).is_dir():
                raise ConfigError(f"sources[{i}].path: {src.path!r} is not a directory")
            if src.kind in ("amass", "motionx"):
                if not self.smpl.model_dir:
                    raise ConfigError(f"smpl.model_dir: required for the {src.kind} source (the folder holding "
                                      "SMPLH_*.npz / SMPLX_*.npz body models)")  # fmt: skip
                if not Path(self.smpl.model_dir).is_dir():
                    raise ConfigError(f"smpl.model_dir: {self.smpl.model_dir!r} is not a directory")
            if src.kind == "amass":
                index = Path(self.amass.index or Path(src.path) / "index.csv")
                if not index.is_file():
                    raise ConfigError(f"amass.index: {str(index)!r} does not exist (HumanML3D's index.csv)")
                if self.amass.texts and not Path(self.amass.texts).is_dir():
                    raise ConfigError(f"amass.texts: {self.amass.texts!r} is not a directory")
            if src.kind == "video" and not (Path(src.path) / self.video.metadata).is_file():
                raise ConfigError(f"video.metadata: {str(Path(src.path) / self.video.metadata)!r} does not exist")
            if src.kind == "motionx" and not (Path(src.path) / self.motionx.motions).is_dir():
                raise ConfigError(f"motionx.motions: {str(Path(src.path) / self.motionx.motions)!r} is not a directory")


def _coerce(value, tp, key: str):
    """Check/convert a YAML value to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {tp}")


def _from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in known:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(f"{where}: unknown config key (known here: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def config_to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _set_dotted(tree: dict, dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {k!r} is not a section")
    # YAML parsing gives ints, floats, bools, null and lists their natural types.
    node[keys[-1]] = yaml.safe_load(raw) if raw != "" else ""


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
    """Defaults ← YAML file ← ``--set key=value`` overrides ← ``--source KIND=PATH``; then validate."""
    tree: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: {str(p)!r} does not exist")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config: {str(p)!r} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"--config: {str(p)!r} must hold a mapping at the top level")
        tree = loaded or {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        _set_dotted(tree, key.strip(), raw)
    cfg = _from_dict(BuildConfig, tree)
    if sources:
        cfg.sources = [parse_source(s) for s in sources]
    for src in cfg.sources:
        src.path = str(Path(src.path).expanduser().resolve())
    cfg.annotator.prompts_dir = cfg.annotator.prompts_dir or str(DEFAULT_PROMPTS)
    for section, key in ((cfg.smpl, "model_dir"), (cfg.amass, "index"), (cfg.amass, "splits"), (cfg.amass, "texts"),
                         (cfg.annotator, "prompts_dir"), (cfg.annotator, "cache_dir")):  # fmt: skip
        if getattr(section, key):
            setattr(section, key, str(Path(getattr(section, key)).expanduser().resolve()))
    cfg.validate()
    return cfg


def config_hash(cfg: BuildConfig) -> str:
    """Hash of everything that changes the shards' bytes. Where the work runs (executor, Ray settings) and
    where inputs lie (source, body-model, index and text folders) do not count: moving them or switching
    executors keeps a build resumable."""
    d = config_to_dict(cfg)
    d.pop("executor")
    d.pop("ray")
    d["sources"] = [s["kind"] for s in d["sources"]]
    for section, key in (("smpl", "model_dir"), ("amass", "index"), ("amass", "splits"), ("amass", "texts"),
                         ("annotator", "prompts_dir"), ("annotator", "cache_dir")):  # fmt: skip
        d[section][key] = d[section][key] is not None  # whether it is set counts, not where it lies
    for key in ("max_in_flight", "requests_per_minute", "tokens_per_minute", "timeout_s", "max_retries", "backoff_base_s", "backoff_max_s",
                "price_per_1k_prompt_tokens", "price_per_1k_completion_tokens", "api_key_env", "budget_usd"):
        d["annotator"].pop(key)  # how requests are made and priced, not what the answers are
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
