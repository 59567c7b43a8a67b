"""The build config's checks beyond one value's type and bounds: choices among names, fields that must agree,
and the files and folders the config names (sources, prompts, body models, metadata), all before any work
starts; every failure a ConfigError naming the key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from configs import PROMPTS_DIR
from schemas.config_schema import ConfigError
from stages.annotate import TASKS

if TYPE_CHECKING:
    from pipeline.config import BuildConfig

__all__ = ["DEFAULT_PROMPTS", "PATH_KEYS", "SOURCE_KINDS", "check_build_config"]

SOURCE_KINDS = ("humanml3d", "amass", "motionx", "video")
DEFAULT_PROMPTS = PROMPTS_DIR  # the packaged prompts
# (section, key) of every config value that names a file or folder: made absolute on load; where they lie
# does not count in the config hash, only whether they are set
PATH_KEYS = (("smpl", "model_dir"), ("amass", "index"), ("amass", "splits"), ("amass", "texts"),
             ("annotator", "prompts_dir"), ("annotator", "cache_dir"))  # fmt: skip

# key → (allowed values, how the error names them)
_CHOICES = {
    "executor": (("ray", "local"), "must be 'ray' or 'local'"),
    "frames.mode": (("uniform", "fps"), "must be 'uniform' or 'fps'"),
    "annotator.backend": (("offline", "openai", "openai-batch", "none"), "must be offline, openai, openai-batch or none"),
    "annotator.batch_retry": (("sync", "batch", "none"), "sync, batch or none"),
    "annotator.http_client": (("aiohttp", "httpx"), "aiohttp or httpx"),
    "annotator.structured_output": (("json_schema", "json_object", "none"), "json_schema, json_object or none"),
    "validation.plausibility.action": (("flag", "quarantine", "off"), "flag, quarantine or off"),
}
_CODECS = ("zstd", "snappy", "gzip", "lz4", "none")


def check_build_config(cfg: BuildConfig) -> None:
    """Every check of the build config that is not a number's bounds (``check_numbers`` does those)."""
    for key, (allowed, words) in _CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}: {words}, got {value!r}")
    if cfg.shard.compression not in _CODECS:
        raise ConfigError(f"shard.compression: unsupported codec {cfg.shard.compression!r}")
    if not 1 <= cfg.ingest.min_frames <= cfg.ingest.max_frames:
        raise ConfigError(f"ingest.min_frames/ingest.max_frames: need 1 <= min <= max, got "
                          f"{cfg.ingest.min_frames}/{cfg.ingest.max_frames}")  # fmt: skip
    for i, folder in enumerate(cfg.ingest.allowed_roots):
        if not Path(folder).is_dir():
            raise ConfigError(f"ingest.allowed_roots[{i}]: {folder!r} is not a directory")
    _check_annotator(cfg)
    if cfg.smpl.model_dir and Path(cfg.smpl.model_dir).is_dir():  # body-model files: inside their folder
        models = Path(cfg.smpl.model_dir)
        for model in sorted(p for d in (models, models / "smplh", models / "smplx") for p in d.glob("SMPL*_*.*")):
            _check_inside(model, cfg.smpl.model_dir, cfg.ingest.allowed_roots, "smpl.model_dir")
    kinds_seen = set()
    for i, src in enumerate(cfg.sources):
        if src.kind not in SOURCE_KINDS:
            raise ConfigError(f"sources[{i}].kind: unknown source kind {src.kind!r}; one of {SOURCE_KINDS}")
        if src.kind in kinds_seen:
            raise ConfigError(f"sources[{i}]: a second {src.kind!r} source; give one path per kind")
        kinds_seen.add(src.kind)
        _check_source(cfg, i, src)


def _get(cfg, dotted: str):
    node = cfg
    for key in dotted.split("."):
        node = getattr(node, key)
    return node


def _check_annotator(cfg: BuildConfig) -> None:
    a = cfg.annotator
    if not set(a.tasks) <= set(TASKS):
        raise ConfigError(f"annotator.tasks: each of {', '.join(TASKS)}; got {a.tasks}")
    for task in a.tasks if a.backend != "none" else ():
        name = TASKS[task].prompt_field
        prompt = Path(a.prompts_dir or DEFAULT_PROMPTS) / f"{getattr(a, name)}.txt"
        if not prompt.is_file():
            raise ConfigError(f"annotator.{name}: {str(prompt)!r} does not exist")


def _check_source(cfg: BuildConfig, i: int, src) -> None:
    """One source: its folder, and the files and settings its kind needs."""
    if not src.path:
        raise ConfigError(f"sources[{i}].path: empty")
    if not Path(src.path).is_dir():
        raise ConfigError(f"sources[{i}].path: {src.path!r} is not a directory")
    if src.kind in ("amass", "motionx"):
        if not cfg.smpl.model_dir:
            raise ConfigError(f"smpl.model_dir: required for the {src.kind} source (the folder holding "
                              "SMPLH_*.npz / SMPLX_*.npz body models)")  # fmt: skip
        if not Path(cfg.smpl.model_dir).is_dir():
            raise ConfigError(f"smpl.model_dir: {cfg.smpl.model_dir!r} is not a directory")
    if src.kind == "amass":
        index = Path(cfg.amass.index or Path(src.path) / "index.csv")
        if not index.is_file():
            raise ConfigError(f"amass.index: {str(index)!r} does not exist (HumanML3D's index.csv)")
        if cfg.amass.texts and not Path(cfg.amass.texts).is_dir():
            raise ConfigError(f"amass.texts: {cfg.amass.texts!r} is not a directory")
    if src.kind == "video":
        metadata = Path(src.path) / cfg.video.metadata
        if not metadata.is_file():
            raise ConfigError(f"video.metadata: {str(metadata)!r} does not exist")
        _check_inside(metadata, src.path, cfg.ingest.allowed_roots, "video.metadata")
    if src.kind == "motionx" and not (Path(src.path) / cfg.motionx.motions).is_dir():
        raise ConfigError(f"motionx.motions: {str(Path(src.path) / cfg.motionx.motions)!r} is not a directory")


def _check_inside(path: Path, root: str, allowed: tuple[str, ...], key: str) -> None:
    """A file a source names for itself (its metadata) must resolve inside the source or an allowed root."""
    real = Path(os.path.realpath(path))  # (never raises, not even on a symlink loop)
    if not any(real.is_relative_to(os.path.realpath(r)) for r in (root, *allowed)):
        raise ConfigError(f"{key}: {str(path)!r} resolves outside its source ({str(real)!r}); add its folder to "
                          "ingest.allowed_roots to allow it")  # fmt: skip
