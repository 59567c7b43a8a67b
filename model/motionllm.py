"""The MotionLLM-style model: a motion encoder (T2M-GPT's VQ-VAE encoder over HumanML3D's 263-d features,
optionally quantized) and a frozen vision tower (CLIP / SigLIP) per video frame, each with a projector into
the embedding space of a causal LM (any ``AutoModelForCausalLM``, optionally with LoRA adapters). The
prompt's ``<motion>`` / ``<video>`` placeholders are expanded to one token per feature vector
(``model.template``) and those tokens' embeddings are replaced by the projected features (the splice).

Weights are only ever read from local folders (``local_files_only``): nothing is downloaded. The encoders are
``model/motion_encoder.py`` and ``model/video_tower.py`` (re-exported here); this module splices them into the
LM and builds the whole model from a config.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from model.config import ConfigError, TrainConfig
from model.motion_encoder import MotionEncoder, VectorQuantizer, make_projector, motion_token_count
from model.template import MOTION_TOKEN, VIDEO_TOKEN, add_placeholder_tokens
from model.video_tower import MissingWeights, VideoTower, require_dir, video_tower_geometry
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
        return require_dir(str(folder), "lm.path", "a causal language model"), {}
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
        require_dir(cfg.lm.tokenizer, "lm.tokenizer", "the language model's tokenizer")
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
        path, extra = require_dir(cfg.lm.tokenizer, "lm.tokenizer", "the language model's tokenizer"), {}
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
