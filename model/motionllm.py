"""The MotionLLM-style model: a motion encoder (T2M-GPT's VQ-VAE encoder over HumanML3D's 263-d features,
optionally quantized) and a frozen vision tower (CLIP / SigLIP) per video frame, each with a projector into
the embedding space of a causal LM (any ``AutoModelForCausalLM``, optionally with LoRA adapters). The
prompt's ``<motion>`` / ``<video>`` placeholders are expanded to one token per feature vector
(``model.template``) and those tokens' embeddings are replaced by the projected features (the splice).

Weights are only ever read from local folders (``local_files_only``): nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from model.config import ConfigError, TrainConfig
from model.template import MOTION_TOKEN, VIDEO_TOKEN, add_placeholder_tokens
from schemas.motion import FEATURE_DIM

__all__ = [
    "MissingWeights",
    "MotionEncoder",
    "MotionLLM",
    "VectorQuantizer",
    "VideoTower",
    "build_model",
    "check_weights",
    "clean_name",
    "load_tokenizer",
    "make_projector",
    "motion_token_count",
    "resolve_dtype",
    "trainable_groups",
    "video_tower_geometry",
]

log = logging.getLogger(__name__)
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class MissingWeights(FileNotFoundError):
    """A model path in the config that does not hold the expected files (users download weights themselves)."""


def _require_dir(path: str | None, key: str, what: str) -> Path:
    if not path or not Path(path).is_dir():
        raise MissingWeights(f"{key}: {path!r} is not a folder; movid never downloads weights — put {what} "
                             f"there (e.g. `huggingface-cli download <repo> --local-dir {path}`) or set {key}")  # fmt: skip
    if not (Path(path) / "config.json").is_file() and key != "lm.tokenizer":
        raise MissingWeights(f"{key}: {path!r} has no config.json; expected {what} saved with save_pretrained")
    return Path(path)


# ---- motion: T2M-GPT's encoder (models/encdec.py, models/resnet.py), module names kept so its weights load


class ResConv1DBlock(nn.Module):
    def __init__(self, n_in: int, n_state: int, dilation: int = 1):
        super().__init__()
        self.norm1, self.norm2 = nn.Identity(), nn.Identity()
        self.activation1, self.activation2 = nn.ReLU(), nn.ReLU()
        self.conv1 = nn.Conv1d(n_in, n_state, 3, 1, dilation, dilation)
        self.conv2 = nn.Conv1d(n_state, n_in, 1, 1, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Zero past each clip's end before the dilated conv: a clip in a padded batch then sees exactly the zero
        # padding it would see alone, so its features do not depend on its batch neighbours.
        h = self.conv1(self.activation1(self.norm1(x)) * mask)
        return x + self.conv2(self.activation2(self.norm2(h)))


class Resnet1D(nn.Module):
    def __init__(self, n_in: int, n_depth: int, dilation_growth_rate: int):
        super().__init__()
        blocks = [ResConv1DBlock(n_in, n_in, dilation=dilation_growth_rate**d) for d in range(n_depth)]
        self.model = nn.Sequential(*blocks[::-1])  # T2M-GPT reverses the dilations (largest first)


class MotionEncoder(nn.Module):
    """``[B, T, 263]`` (normalised, any padding) → ``[B, T', code_dim]`` with T' = T / stride_t**down_t."""

    def __init__(self, in_dim=FEATURE_DIM, code_dim=512, down_t=2, stride_t=2, width=512, depth=3, dilation_growth_rate=3):
        super().__init__()
        filter_t, pad_t = stride_t * 2, stride_t // 2
        blocks: list[nn.Module] = [nn.Conv1d(in_dim, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            blocks.append(nn.Sequential(nn.Conv1d(width, width, filter_t, stride_t, pad_t),
                                        Resnet1D(width, depth, dilation_growth_rate)))  # fmt: skip
        blocks.append(nn.Conv1d(width, code_dim, 3, 1, 1))
        self.model = nn.Sequential(*blocks)
        self.down_t, self.stride_t = down_t, stride_t

    @staticmethod
    def _conv_len(lengths, conv: nn.Conv1d):
        (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
        return (lengths + 2 * p - d * (k - 1) - 1) // s + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2)

        def mask_of(n: torch.Tensor, t: int) -> torch.Tensor:
            return (torch.arange(t, device=x.device)[None] < n[:, None]).to(x.dtype)[:, None]

        mask = mask_of(lengths, x.shape[-1])
        x = self.model[1](self.model[0](x * mask))
        for down in self.model[2:-1]:
            conv, res = down[0], down[1]
            x = conv(x * mask)
            lengths = self._conv_len(lengths, conv)
            mask = mask_of(lengths, x.shape[-1])
            for block in res.model:
                x = block(x, mask)
        x = self.model[-1](x * mask)
        return x.transpose(1, 2), mask[:, 0] > 0


def motion_token_count(num_frames: int, stride_t: int, down_t: int) -> int:
    """Feature vectors the encoder gives a clip of ``num_frames`` frames (the placeholder's expansion)."""
    n = num_frames
    for _ in range(down_t):
        n = (n + 2 * (stride_t // 2) - 2 * stride_t) // stride_t + 1
    return max(n, 0)


class VectorQuantizer(nn.Module):
    """Nearest-code quantization (T2M-GPT's codebook, buffer name kept) with a straight-through gradient and
    the VQ-VAE loss (codebook term + beta × commitment term)."""

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim) / code_dim**0.5)
        self.beta = beta

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = z[mask]
        d = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(-1)[None]
        q = self.codebook[d.argmin(-1)]
        loss = (q - flat.detach()).pow(2).mean() + self.beta * (flat - q.detach()).pow(2).mean()
        out = z.clone()
        out[mask] = flat + (q - flat).detach()
        return out, loss


def make_projector(kind: str, d_in: int, d_out: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))  # LLaVA's mlp2x_gelu


# ---- video: a transformers vision tower applied to each frame


def _tower_class(model_type: str):
    import transformers

    if model_type in ("clip", "clip_vision_model"):
        return transformers.CLIPVisionModel, True
    if model_type in ("siglip", "siglip_vision_model"):
        return transformers.SiglipVisionModel, False
    raise ConfigError(f"video.tower: model_type {model_type!r} is not a CLIP or SigLIP vision checkpoint (a tower with "
                      "its own code, such as LanguageBind's video tower, is not supported; see docs/training.md)")  # fmt: skip


def video_tower_geometry(cfg: TrainConfig) -> dict:
    """Image size, patch size, tokens per frame and pixel mean/std of the configured tower, from its folder's
    config.json / preprocessor_config.json (no weights loaded)."""
    from transformers import AutoConfig

    path = _require_dir(cfg.video.tower, "video.tower", "a CLIP or SigLIP vision checkpoint")
    tc = AutoConfig.from_pretrained(path, local_files_only=True)
    _, has_cls = _tower_class(tc.model_type)
    vc = getattr(tc, "vision_config", tc)
    per_frame = (vc.image_size // vc.patch_size) ** 2 + (1 if has_cls and cfg.video.select_feature == "cls_patch" else 0)
    pre = path / "preprocessor_config.json"
    pre = json.loads(pre.read_text()) if pre.is_file() else {}
    return {
        "image_size": vc.image_size,
        "patch_size": vc.patch_size,
        "tokens_per_frame": per_frame,
        "hidden_size": vc.hidden_size,
        "mean": cfg.video.image_mean or pre.get("image_mean") or OPENAI_CLIP_MEAN,
        "std": cfg.video.image_std or pre.get("image_std") or OPENAI_CLIP_STD,
    }


class VideoTower(nn.Module):
    """``[B, F, 3, H, W]`` → ``[B, F × tokens_per_frame, hidden]``: the tower's ``select_layer`` hidden states."""

    def __init__(self, cfg: TrainConfig, dtype: torch.dtype):
        super().__init__()
        from transformers import AutoConfig

        path = _require_dir(cfg.video.tower, "video.tower", "a CLIP or SigLIP vision checkpoint")
        cls, self.has_cls = _tower_class(AutoConfig.from_pretrained(path, local_files_only=True).model_type)
        self.tower = cls.from_pretrained(path, dtype=dtype, local_files_only=True)
        self.select_layer, self.select_feature = cfg.video.select_layer, cfg.video.select_feature
        self.hidden_size, self.image_size = self.tower.config.hidden_size, self.tower.config.image_size
        self.trainable = cfg.video.train_tower
        self.tower.requires_grad_(self.trainable)
        if not self.trainable:
            self.tower.eval()

    def train(self, mode: bool = True):  # a frozen tower stays in eval mode (dropout off)
        return super().train(mode and self.trainable)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, f = frames.shape[:2]
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            out = self.tower(pixel_values=frames.flatten(0, 1).to(self.tower.dtype), output_hidden_states=True)
            h = out.hidden_states[self.select_layer]
        if self.has_cls and self.select_feature == "patch":
            h = h[:, 1:]
        return h.reshape(b, f * h.shape[1], h.shape[-1])


# ---- the whole model


class MotionLLM(nn.Module):
    def __init__(self, lm: nn.Module, token_ids: dict[str, int], motion_encoder=None, motion_quantizer=None,
                 motion_projector=None, video_tower=None, video_projector=None, vq_loss_weight: float = 1.0,
                 motion_blind: bool = False, video_blind: bool = False):  # fmt: skip
        super().__init__()
        self.lm = lm
        self.motion_encoder, self.motion_quantizer, self.motion_projector = motion_encoder, motion_quantizer, motion_projector
        self.video_tower, self.video_projector = video_tower, video_projector
        self.motion_token_id, self.video_token_id = token_ids[MOTION_TOKEN], token_ids[VIDEO_TOKEN]
        self.vq_loss_weight = vq_loss_weight
        # The blind twin (motion.blind / video.blind): zeroed inputs of the same shape, here rather than in the data
        # path, so that every way in (datasets, Ray Data, generate, evaluate) feeds the model alike.
        self.motion_blind, self.video_blind = motion_blind, video_blind

    def encode_motion(self, motion: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The valid feature vectors of every clip, clip after clip: ``[sum of T'_i, hidden]``; and the VQ loss."""
        z, mask = self.motion_encoder(motion, lengths)
        vq_loss = z.new_zeros(())
        if self.motion_quantizer is not None:
            z, vq_loss = self.motion_quantizer(z, mask)
        return self.motion_projector(z[mask]), vq_loss

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.video_projector(self.video_tower(frames)).flatten(0, 1)

    def _splice(self, embeds, input_ids, token_id, features, name):
        where = input_ids == token_id
        n = int(where.sum())
        if features is None:
            if n:
                raise ValueError(f"{n} {name} placeholder tokens but no {name} input")
            return embeds
        if n != features.shape[0]:
            raise ValueError(f"{n} {name} placeholder tokens for {features.shape[0]} {name} feature vectors")
        return embeds.masked_scatter(where.unsqueeze(-1), features.to(embeds.dtype))

    def embed(self, input_ids, motion=None, motion_lengths=None, frames=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with the placeholders' rows replaced by projected features; and auxiliary losses."""
        embeds = self.lm.get_input_embeddings()(input_ids)
        aux = embeds.new_zeros((), dtype=torch.float32)
        motion_features = video_features = None
        if motion is not None and self.motion_blind:
            motion = torch.zeros_like(motion)  # same length: as many motion tokens as the clip would give
        if frames is not None and self.video_blind:
            frames = torch.zeros_like(frames)
        if motion is not None and self.motion_encoder is not None:
            motion_features, vq_loss = self.encode_motion(motion, motion_lengths)
            aux = aux + self.vq_loss_weight * vq_loss
        if frames is not None and self.video_tower is not None:
            video_features = self.encode_video(frames)
        embeds = self._splice(embeds, input_ids, self.motion_token_id, motion_features, "motion")
        embeds = self._splice(embeds, input_ids, self.video_token_id, video_features, "video")
        if self.training:
            # A branch this batch did not use still runs, on a dummy input and times zero: every trainable parameter
            # gets a gradient on every rank (DDP needs no find_unused_parameters, Adam treats all alike) and every
            # FSDP shard group gathers its parameters on every rank (a rank that skipped one would hang the others).
            if motion_features is None and self.motion_encoder is not None:
                n = 4 * self.motion_encoder.stride_t**self.motion_encoder.down_t
                dummy, vq_loss = self.encode_motion(embeds.new_zeros(1, n, FEATURE_DIM, dtype=torch.float32),
                                                    torch.tensor([n], device=embeds.device))  # fmt: skip
                aux = aux + (dummy.sum() + vq_loss) * 0.0
            if video_features is None and self.video_tower is not None:
                size = self.video_tower.image_size
                aux = aux + self.encode_video(embeds.new_zeros(1, 1, 3, size, size, dtype=torch.float32)).sum() * 0.0
        return embeds, aux

    def forward(self, input_ids, attention_mask, labels, motion=None, motion_lengths=None, frames=None,
                num_items: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(LM loss, auxiliary loss): the LM's token cross-entropy summed over answer tokens and divided by
        ``num_items`` (the trainer passes the answer tokens of a whole optimizer step; none: this batch's mean),
        and the VQ loss plus the zero-weighted terms of unused branches."""
        embeds, aux = self.embed(input_ids, motion, motion_lengths, frames)
        out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
                      num_items_in_batch=num_items, use_cache=False)  # fmt: skip
        return out.loss, aux

    @torch.no_grad()
    def generate(self, input_ids, motion=None, motion_lengths=None, frames=None, max_new_tokens: int = 64,
                 eos_token_id: int | None = None, pad_token_id: int | None = None,
                 attention_mask: torch.Tensor | None = None) -> list[list[int]]:  # fmt: skip
        """Greedy answers (token ids, eos excluded) for a batch of prompts, left-padded (``attention_mask`` 0 on
        the padding) so that every prompt ends where generation starts."""
        from transformers import GenerationConfig

        embeds, _ = self.embed(input_ids, motion, motion_lengths, frames)
        gen = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                               eos_token_id=eos_token_id, pad_token_id=pad_token_id if pad_token_id is not None else eos_token_id,
                               suppress_tokens=[self.motion_token_id, self.video_token_id])  # fmt: skip
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        out = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, generation_config=gen)
        answers = []
        for row in out.tolist():
            if eos_token_id is not None and eos_token_id in row:
                row = row[: row.index(eos_token_id)]
            answers.append(row)
        return answers


def _require_lm(cfg: TrainConfig) -> tuple[Path, dict]:
    """The LM's folder and the ``from_pretrained`` arguments that read it (``gguf_file`` for a GGUF file)."""
    from model.config import PACKAGE_PREFIX, package_folder

    folder = package_folder(cfg.lm.path, "lm.path") if cfg.lm.path.startswith(PACKAGE_PREFIX) else cfg.lm.path
    if not cfg.lm.gguf_file:
        return _require_dir(str(folder), "lm.path", "a causal language model"), {}
    file = Path(folder or "") / cfg.lm.gguf_file
    if not file.is_file():
        raise MissingWeights(f"lm.gguf_file: {str(file)!r} does not exist; movid never downloads weights "
                             "(SmolLM2-135M-Instruct: make smollm-setup, see docs/training.md)")  # fmt: skip
    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError:
        raise ConfigError("lm.gguf_file: reading a GGUF file needs the gguf package (pip install 'movid[smollm]')") from None
    return file.parent, {"gguf_file": file.name}


def check_weights(cfg: TrainConfig) -> None:
    """Every local folder / file the config names is there, before any worker starts (errors name the key)."""
    _require_lm(cfg)
    if cfg.lm.tokenizer:
        _require_dir(cfg.lm.tokenizer, "lm.tokenizer", "the language model's tokenizer")
    if cfg.video.tower:
        video_tower_geometry(cfg)
    if cfg.motion.enabled and cfg.motion.vqvae_checkpoint and not Path(cfg.motion.vqvae_checkpoint).is_file():
        raise MissingWeights(f"motion.vqvae_checkpoint: {cfg.motion.vqvae_checkpoint!r} does not exist "
                             "(T2M-GPT's VQ-VAE net_last.pth)")  # fmt: skip


def resolve_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    name = cfg.lm.dtype
    if name == "auto":
        # FSDP flattens parameters per unit and needs one dtype in each; it casts to bf16 itself (MixedPrecision).
        name = "bfloat16" if device.type == "cuda" and cfg.train.strategy != "fsdp" else "float32"
    return getattr(torch, name)


def load_tokenizer(cfg: TrainConfig):
    from transformers import AutoTokenizer

    if cfg.lm.tokenizer:
        path, extra = _require_dir(cfg.lm.tokenizer, "lm.tokenizer", "the language model's tokenizer"), {}
    else:
        path, extra = _require_lm(cfg)  # a GGUF file holds its tokenizer (vocabulary, merges, chat template)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, **extra)
    token_ids = add_placeholder_tokens(tokenizer)
    return tokenizer, token_ids


def _load_vqvae(cfg: TrainConfig, encoder: MotionEncoder, quantizer: VectorQuantizer | None) -> None:
    path = Path(cfg.motion.vqvae_checkpoint)
    if not path.is_file():
        raise MissingWeights(f"motion.vqvae_checkpoint: {str(path)!r} does not exist (T2M-GPT's VQ-VAE net_last.pth)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("net", state)
    enc = {k.split("encoder.", 1)[1]: v for k, v in state.items() if k.startswith(("vqvae.encoder.", "encoder."))}
    try:
        encoder.load_state_dict(enc)
    except RuntimeError as exc:
        raise ConfigError(f"motion.vqvae_checkpoint: encoder weights do not fit motion.* settings: {exc}") from None
    code = next((v for k, v in state.items() if k.endswith("quantizer.codebook")), None)
    if quantizer is not None:
        if code is None or code.shape != quantizer.codebook.shape:
            raise ConfigError(f"motion.vqvae_checkpoint: no codebook of shape {tuple(quantizer.codebook.shape)}")
        with torch.no_grad():
            quantizer.codebook.copy_(code)


def build_model(cfg: TrainConfig, device: torch.device | str = "cpu"):
    """``(model, tokenizer)`` from the config's local folders, trainable parts set per ``lm.mode`` /
    ``motion.train_encoder`` / ``video.train_tower``; new modules seeded by ``train.seed``."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    torch.manual_seed(cfg.train.seed)  # LoRA's and the new modules' initial weights: the same in every run
    tokenizer, token_ids = load_tokenizer(cfg)
    path, extra = _require_lm(cfg)
    dtype = resolve_dtype(cfg, device)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True, **extra)
    rows = lm.get_input_embeddings().weight.shape[0]
    if max(token_ids.values()) >= rows:
        lm.resize_token_embeddings(max(token_ids.values()) + 1, mean_resizing=False)
        with torch.no_grad():  # the new rows deterministically (the mean row), so runs and resumes agree
            for layer in {lm.get_input_embeddings(), lm.get_output_embeddings()} - {None}:
                layer.weight[rows:] = layer.weight[:rows].mean(0)
    lm.requires_grad_(cfg.lm.mode == "full")
    if cfg.train.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lm.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lc = cfg.lm.lora
        with warnings.catch_warnings():  # peft asks transformers a deprecated question; the warning is noise
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            lm = get_peft_model(lm, LoraConfig(r=lc.rank, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                               target_modules=list(lc.target_modules), bias="none", task_type="CAUSAL_LM"))  # fmt: skip
    hidden = lm.get_input_embeddings().weight.shape[1]
    m = cfg.motion
    encoder = quantizer = motion_projector = video_tower = video_projector = None
    if m.enabled:
        encoder = MotionEncoder(FEATURE_DIM, m.code_dim, m.down_t, m.stride_t, m.width, m.depth, m.dilation_growth_rate)
        quantizer = VectorQuantizer(m.codebook_size, m.code_dim, m.vq_beta) if m.codebook_size else None
        if m.vqvae_checkpoint:
            _load_vqvae(cfg, encoder, quantizer)
        encoder.requires_grad_(m.train_encoder)
        if quantizer is not None:
            quantizer.requires_grad_(m.train_encoder)
        motion_projector = make_projector(m.projector, m.code_dim, hidden)
    if cfg.video.tower:
        video_tower = VideoTower(cfg, dtype)
        video_projector = make_projector(cfg.video.projector, video_tower.hidden_size, hidden)
    model = MotionLLM(lm, token_ids, encoder, quantizer, motion_projector, video_tower, video_projector, m.vq_loss_weight,
                      motion_blind=m.blind, video_blind=cfg.video.blind)  # fmt: skip
    return model.to(device), tokenizer


def clean_name(name: str) -> str:
    """A parameter's name in the bare MotionLLM, whatever DDP / FSDP / activation checkpointing wrap it in."""
    for wrapper in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module."):
        name = name.replace(wrapper, "")
    return name.removeprefix("module.")


def trainable_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Trainable parameters by optimizer group: motion_encoder, projector, lm (LoRA or full), video_tower."""
    groups: dict[str, list] = {"motion_encoder": [], "projector": [], "lm": [], "video_tower": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        bare = clean_name(name)
        key = ("motion_encoder" if bare.startswith(("motion_encoder.", "motion_quantizer.")) else
               "projector" if bare.startswith(("motion_projector.", "video_projector.")) else
               "video_tower" if bare.startswith("video_tower.") else "lm")  # fmt: skip
        groups[key].append((bare, p))
    return {k: v for k, v in groups.items() if v}
