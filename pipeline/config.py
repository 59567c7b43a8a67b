"""movid's one typed config tree: dataclasses with defaults (the embedded defaults), loaded from YAML and
overridden with dotted ``--set key=value``; every error names the key.

Every number in the tree is checked on load by one function (``_check_numbers``): it must be finite and, unless
its field declares otherwise, >= 0; a field declares tighter bounds next to itself with ``metadata`` (``gt``,
``ge``, ``le``) — ``field(default=20.0, metadata={"gt": 0})`` — so a new key is checked without a list to keep.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import reprlib
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
    "annotation_digests",
    "config_hash",
    "config_to_dict",
    "load_config",
    "parse_source",
]

SOURCE_KINDS = ("humanml3d", "amass", "motionx", "video")
DEFAULT_PROMPTS = Path(__file__).resolve().parents[1] / "configs" / "prompts"
MAX_NESTING = 64  # a config deeper than this is not a movid config (and YAML's parser recurses)


def _num(default, **bounds):
    """A numeric field with bounds beyond the default ``>= 0`` (``gt``, ``ge``, ``le``), checked on load."""
    return field(default=default, metadata=bounds)


class ConfigError(ValueError):
    """A config problem found before any work starts; the message names the key or path."""


@dataclass
class SourceSpec:
    kind: str = "humanml3d"
    path: str = ""


@dataclass
class RayConfig:
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001": join a cluster
    num_cpus: int | None = _num(None, ge=1)  # local Ray only; None = all cores
    object_store_memory: int | None = _num(256 * 1024**2, ge=1)  # local Ray only; the pipeline passes no big objects
    max_retries: int = 3  # re-runs of a unit whose worker process died (data errors are never retried)
    max_in_flight: int | None = _num(None, ge=1)  # units submitted at once; None = 2 × cluster CPUs
    # Environment variables to pass to the workers of a cluster given by address (they do not inherit the
    # driver's). Opt-in: Ray keeps them in the job's runtime environment, visible to who can see the job.
    forward_env: list[str] = field(default_factory=list)


@dataclass
class PlanConfig:
    unit_size: int = _num(256, ge=1)  # source clips per work unit


@dataclass
class IngestConfig:
    fps: float = _num(20.0, gt=0, le=1000)
    min_frames: int = _num(40, ge=1)  # HumanML3D trains on clips of 40–196 frames
    max_frames: int = _num(196, ge=1)
    subclips: bool = True  # a caption with a time span yields its own sub-clip row, as HumanML3D's loader
    # Folders outside a source's root that its files may resolve into (through symlinks or '..'); by default
    # every file a source names must lie inside its root (or amass.texts / amass.splits / smpl.model_dir).
    allowed_roots: tuple[str, ...] = ()  # (a tuple: the section stays hashable, for the suites keyed by it)
    # Caps on one record (each names itself as the quarantine reason):
    max_file_frames: int = _num(100_000, ge=1)  # frames a motion file may hold (too_many_frames), from its header
    max_caption_chars: int = _num(1000, ge=1)  # characters of one caption (caption_too_long)
    max_captions: int = _num(64, ge=1)  # caption lines of one clip or video (too_many_captions)
    max_text_bytes: int = _num(16 * 1024**2, ge=1)  # size of one caption file (text_too_large)


@dataclass
class SmplConfig:
    model_dir: str | None = None  # folder with SMPLH_{MALE,FEMALE,NEUTRAL}.npz / SMPLX_*.npz (licensed; not shipped)
    trusted_pickle: bool = False  # allow .pkl models (unpickling runs code)
    num_betas: int = _num(10, ge=1, le=300)  # HumanML3D uses 10 shape coefficients (SMPL-X has at most 300)


@dataclass
class AmassConfig:
    index: str | None = None  # HumanML3D's index.csv; default <source>/index.csv
    splits: str | None = None  # folder with train/val/test.txt; default <source>
    texts: str | None = None  # HumanML3D's texts/ folder (captions); none: motions without captions


@dataclass
class MotionXConfig:
    motions: str = "motion_data/smplx_322"  # under the source: <id>.npy, T × 322 SMPL-X
    texts: str | None = "texts/semantic_label"  # under the source: <id>.txt; none: motions without captions
    fps: float = _num(30.0, gt=0, le=1000)


@dataclass
class VideoConfig:
    metadata: str = "metadata.jsonl"  # under the source: JSONL or CSV (path, captions, motion_id, smpl, start, end, split, offset)
    smpl_fps: float | None = _num(None, gt=0, le=1000)  # frame rate of per-frame SMPL-X files; default: the video's


@dataclass
class FramesConfig:
    mode: str = "uniform"  # uniform: num_frames spread over the segment; fps: one every 1/sample_fps s
    num_frames: int = _num(8, ge=1, le=1024)
    sample_fps: float = _num(1.0, gt=0, le=60)
    short_side: int = _num(224, ge=16, le=4096)  # (the stored frames; an upper bound keeps a typo from costing GBs)
    jpeg_quality: int = _num(90, ge=1, le=100)
    # Caps on one video, from its probe before any frame is decoded (each names itself as the quarantine reason):
    max_pixels: int = _num(3840 * 2160, ge=1)  # width × height of a frame (too_many_pixels): 4K UHD
    max_video_frames: int = _num(216_000, ge=1)  # frames in the file (too_many_video_frames): an hour at 60 fps
    max_video_seconds: float = _num(3600.0, gt=0)  # duration of the file (video_too_long)


@dataclass
class AlignConfig:
    tolerance_seconds: float = _num(0.5, ge=0)  # a video and its motion whose lengths differ more go to quarantine


@dataclass
class AnnotatorConfig:
    backend: str = "offline"  # offline (embedded, no network) | openai (any OpenAI-compatible endpoint) | none
    base_url: str | None = None  # e.g. http://localhost:8000/v1 for vLLM / llama.cpp; none = OpenAI
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"  # the name of the variable; the key itself never enters the config
    max_in_flight: int = _num(8, ge=1)  # concurrent requests per worker
    http_client: str = "aiohttp"  # the openai client's HTTP layer: aiohttp (openai[aiohttp], less CPU) | httpx
    requests_per_minute: float | None = _num(None, gt=0)  # for the whole build, all workers together
    tokens_per_minute: float | None = _num(None, gt=0)  # likewise (prompt estimate + max_tokens per request)
    structured_output: str = "json_schema"  # json_schema (OpenAI, vLLM) | json_object (llama.cpp server) | none
    temperature: float = _num(0.7, le=2)  # (OpenAI's range: 0–2)
    max_tokens: int = _num(800, ge=1)
    # a longer prompt (text, not images) is quarantined as prompt_too_long, never sent (~25k tokens)
    max_prompt_chars: int = _num(100_000, ge=1)
    timeout_s: float = _num(60.0, gt=0)
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    qa_per_clip: int = _num(6, ge=1, le=100)
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
    max_foot_skate_ratio: float = _num(0.3, le=1)  # share of contact frames that slide
    max_bone_length_change: float = 0.05  # (max - min) / median length of any bone over the clip


@dataclass
class ValidateConfig:
    enabled: bool = True  # record-level suites (great-expectations) on every unit's tables
    fail_on_table_errors: bool = True  # duplicate ids, split leakage, dangling references fail the build
    plausibility: PlausibilityConfig = field(default_factory=PlausibilityConfig)


@dataclass
class ShardConfig:
    max_rows: int = _num(1000, ge=1)
    compression: str = "zstd"
    row_group_rows: int = _num(128, ge=1)


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
    seed: int = _num(0, le=2**63 - 1)  # (stored in int64 columns and metadata)
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
        _check_numbers(self)  # every number: finite, within its field's bounds
        if self.executor not in ("ray", "local"):
            raise ConfigError(f"executor: must be 'ray' or 'local', got {self.executor!r}")
        if self.shard.compression not in ("zstd", "snappy", "gzip", "lz4", "none"):
            raise ConfigError(f"shard.compression: unsupported codec {self.shard.compression!r}")
        if not 1 <= self.ingest.min_frames <= self.ingest.max_frames:
            raise ConfigError(
                f"ingest.min_frames/ingest.max_frames: need 1 <= min <= max, got "
                f"{self.ingest.min_frames}/{self.ingest.max_frames}"
            )
        if self.frames.mode not in ("uniform", "fps"):
            raise ConfigError(f"frames.mode: must be 'uniform' or 'fps', got {self.frames.mode!r}")
        for i, folder in enumerate(self.ingest.allowed_roots):
            if not Path(folder).is_dir():
                raise ConfigError(f"ingest.allowed_roots[{i}]: {folder!r} is not a directory")
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
        for task in self.annotator.tasks if self.annotator.backend != "none" else ():
            name = TASKS[task].prompt_field
            prompt = Path(self.annotator.prompts_dir or DEFAULT_PROMPTS) / f"{getattr(self.annotator, name)}.txt"
            if not prompt.is_file():
                raise ConfigError(f"annotator.{name}: {str(prompt)!r} does not exist")
        if self.validation.plausibility.action not in ("flag", "quarantine", "off"):
            raise ConfigError(f"validation.plausibility.action: flag, quarantine or off, got "
                              f"{self.validation.plausibility.action!r}")  # fmt: skip
        if self.smpl.model_dir and Path(self.smpl.model_dir).is_dir():  # body-model files: inside their folder
            models = Path(self.smpl.model_dir)
            for model in sorted(p for d in (models, models / "smplh", models / "smplx") for p in d.glob("SMPL*_*.*")):
                _check_inside(model, self.smpl.model_dir, self.ingest.allowed_roots, "smpl.model_dir")
        kinds_seen = set()
        for i, src in enumerate(self.sources):
            if src.kind not in SOURCE_KINDS:
                raise ConfigError(f"sources[{i}].kind: unknown source kind {src.kind!r}; one of {SOURCE_KINDS}")
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
            if src.kind == "video":
                metadata = Path(src.path) / self.video.metadata
                if not metadata.is_file():
                    raise ConfigError(f"video.metadata: {str(metadata)!r} does not exist")
                _check_inside(metadata, src.path, self.ingest.allowed_roots, "video.metadata")
            if src.kind == "motionx" and not (Path(src.path) / self.motionx.motions).is_dir():
                raise ConfigError(f"motionx.motions: {str(Path(src.path) / self.motionx.motions)!r} is not a directory")


def _check_inside(path: Path, root: str, allowed: tuple[str, ...], key: str) -> None:
    """A file a source names for itself (its metadata) must resolve inside the source or an allowed root."""
    real = Path(os.path.realpath(path))  # (never raises, not even on a symlink loop)
    if not any(real.is_relative_to(os.path.realpath(r)) for r in (root, *allowed)):
        raise ConfigError(f"{key}: {str(path)!r} resolves outside its source ({str(real)!r}); add its folder to "
                          "ingest.allowed_roots to allow it")  # fmt: skip


def _check_numbers(node, prefix: str = "") -> None:
    """Every int/float of the tree under ``node``: finite, and within its field's bounds (``metadata`` gt / ge /
    le; ``ge=0`` when a field declares neither gt nor ge — no count, rate, size or price here is negative)."""
    for f in dataclasses.fields(node):
        value, key = getattr(node, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_numbers(value, f"{key}.")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value}")
        bounds = f.metadata
        gt, ge, le = bounds.get("gt"), bounds.get("ge", 0 if "gt" not in bounds else None), bounds.get("le")
        if gt is not None and not value > gt:
            raise ConfigError(f"{key}: must be > {gt}, got {value}")
        if ge is not None and not value >= ge:
            raise ConfigError(f"{key}: must be >= {ge}, got {value}")
        if le is not None and not value <= le:
            raise ConfigError(f"{key}: must be <= {le}, got {value}")


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
            raise ConfigError(f"{key}: expected a list, got {_quote(value)}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:  # tuple[T, ...]: a YAML list, kept immutable
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_quote(value)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {_quote(value)}")
        return _from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_quote(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {_quote(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {_quote(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {_quote(value)}")
    raise ConfigError(f"{key}: unsupported config type {tp}")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def _quote(value) -> str:
    """A value for an error message, on one line and short, whatever its size or nesting (reprlib's limits)."""
    return _REPR.repr(value)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _depth(value, limit: int) -> int:
    """Nesting depth of a parsed YAML value, without recursing (a hostile file may nest thousands deep) and
    visiting each container once (YAML aliases can share one list exponentially many times)."""
    deepest, stack, seen = 0, [(value, 1)], set()
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)) and id(v) not in seen:
            seen.add(id(v))
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack += [(x, d + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return deepest


def _safe_yaml(text: str, where: str):
    """``yaml.safe_load`` (no Python tags, no code), every failure a one-line ConfigError naming ``where``."""
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a movid config") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # (ValueError: e.g. a 5,000-digit int)
        raise ConfigError(f"{where}: not valid YAML: {_one_line(exc)}") from None
    if _depth(value, MAX_NESTING) > MAX_NESTING:
        raise ConfigError(f"{where}: nested more than {MAX_NESTING} levels deep; not a movid config")
    return value


def _from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in known:
            where = f"{prefix}.{k}" if prefix else str(k)
            where = where if where.isprintable() else repr(where)[1:-1]
            raise ConfigError(f"{where[:120]}: unknown config key (known here: {', '.join(sorted(known))})")
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
    # YAML parsing gives ints, floats, bools, null and lists their natural types (the same safe loader as files).
    node[keys[-1]] = _safe_yaml(raw, f"--set {dotted}") if raw != "" else ""


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
            text = p.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"--config: {str(p)!r} is not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"--config: {str(p)!r} cannot be read ({exc.strerror or exc})") from None
        loaded = _safe_yaml(text, f"--config {str(p)!r}")
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
    cfg.ingest.allowed_roots = tuple(str(Path(p).expanduser().resolve()) for p in cfg.ingest.allowed_roots)
    cfg.validate()
    return cfg


def annotation_digests(cfg: BuildConfig) -> dict[str, str]:
    """sha256 of the text of every prompt the build's annotation tasks use, and of each task's answer JSON
    schema, with the schema version: what the config names by file or code, whose content changes the
    answers. Only the tasks that run count (none with ``annotator.backend=none``). The offline annotator's
    prompts count too: it does not send them, but every instruction row records its prompt's version (a
    hash of its text), so an edited prompt changes the shards' bytes with either backend."""
    from schemas import SCHEMA_VERSION
    from stages.annotate import TASKS
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


def config_hash(cfg: BuildConfig) -> str:
    """Hash of every config value that changes the shards' bytes. Where the work runs (executor, Ray
    settings) and where inputs lie (source, body-model, index, text and prompt folders) do not count: moving
    them or switching executors keeps a build resumable. What the named prompt and schema files *say* is
    the run identity's ``annotation_inputs`` (``annotation_digests``, next to this hash in ``run.json``), so
    this hash reads no file: Ray workers compute it to find the build's rate-limit actor."""
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
