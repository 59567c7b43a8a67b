"""The video side of the model: a local CLIP / SigLIP vision tower (``transformers``, never downloaded) applied
to each frame, its geometry read from the checkpoint's config, and the error for a model folder that does not
hold the expected files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from model.config import ConfigError, TrainConfig

__all__ = ["MissingWeights", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "VideoTower", "require_dir", "video_tower_geometry"]

OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]



class MissingWeights(FileNotFoundError):
    """A model path in the config that does not hold the expected files (users download weights themselves)."""


def require_dir(path: str | None, key: str, what: str) -> Path:
    if not path or not Path(path).is_dir():
        raise MissingWeights(f"{key}: {path!r} is not a folder; movid never downloads weights — put {what} "
                             f"there (e.g. `huggingface-cli download <repo> --local-dir {path}`) or set {key}")  # fmt: skip
    if not (Path(path) / "config.json").is_file() and key != "lm.tokenizer":
        raise MissingWeights(f"{key}: {path!r} has no config.json; expected {what} saved with save_pretrained")
    return Path(path)


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

    path = require_dir(cfg.video.tower, "video.tower", "a CLIP or SigLIP vision checkpoint")
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

        path = require_dir(cfg.video.tower, "video.tower", "a CLIP or SigLIP vision checkpoint")
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
