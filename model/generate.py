"""Answers from a trained checkpoint: the run's config rebuilds the model from its local folders, the
checkpoint's trainable weights and motion Mean/Std go in, and the prompt is the training template's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads
import torch
import yaml

from model.checkpoint import CONFIG, STATS, load_trainable, resolve_checkpoint
from model.config import train_config_from_dict
from model.data import MotionStats, decode_frames
from model.template import MOTION_TOKEN, VIDEO_TOKEN, encode_prompt, expand_placeholders

__all__ = ["Answerer", "fetch_motion", "fetch_video"]


def _fetch(out: str | Path, table: str, key: str, value: str, column: str):
    folder = Path(out) / table
    if not folder.is_dir():
        raise FileNotFoundError(f"{out}: no {table} table")
    found = pads.dataset(str(folder), format="parquet").to_table(columns=[column], filter=pc.field(key) == value)
    if len(found) == 0:
        raise KeyError(f"{out}: no {table} row with {key} {value!r}")
    return found[column][0]


def fetch_motion(out: str | Path, motion_id: str) -> np.ndarray:
    """The ``[T, 263]`` features of a motion of the build (any split)."""
    return np.asarray(_fetch(out, "motion", "motion_id", motion_id, "features").as_py(), dtype=np.float32)


def fetch_video(out: str | Path, video_id: str) -> list[bytes]:
    return _fetch(out, "video", "video_id", video_id, "frames").as_py()


class Answerer:
    """A checkpoint loaded once; ``answer`` many questions."""

    def __init__(self, checkpoint: str | Path, overrides: list[str] | None = None, device: str | None = None):
        from model.config import _set_dotted
        from model.motionllm import build_model, video_tower_geometry
        from model.train import _quiet_libraries

        _quiet_libraries()
        self.ckpt = resolve_checkpoint(checkpoint)
        tree = yaml.safe_load((self.ckpt / CONFIG).read_text())
        for item in overrides or []:  # e.g. lm.path=… where the weights now live
            key, _, raw = item.partition("=")
            _set_dotted(tree, key.strip(), raw)
        self.cfg = train_config_from_dict(tree)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.tokenizer = build_model(self.cfg, self.device)
        load_trainable(self.model, self.ckpt, require_all=True)
        self.model.eval()
        self.stats = MotionStats.load(self.ckpt / STATS)
        self.geometry = video_tower_geometry(self.cfg) if self.cfg.video.tower else None

    def answer(self, question: str, motion: np.ndarray | None = None, video: list[bytes] | None = None,
               max_new_tokens: int = 128) -> str:  # fmt: skip
        from model.motionllm import motion_token_count

        m, cfg = self.model, self.cfg
        if video is not None and VIDEO_TOKEN not in question:
            question = f"{VIDEO_TOKEN}\n{question}"
        if motion is not None and MOTION_TOKEN not in question:
            question = f"{MOTION_TOKEN}\n{question}"
        ids = encode_prompt(self.tokenizer, [{"role": "user", "content": question}], cfg.data.system_prompt)
        counts, inputs = {}, {}
        if motion is not None:
            if not cfg.motion.enabled:
                raise ValueError("this model has no motion encoder")
            x = self.stats.normalize(motion[: cfg.motion.max_frames])
            counts[m.motion_token_id] = motion_token_count(len(x), cfg.motion.stride_t, cfg.motion.down_t)
            inputs["motion"] = torch.from_numpy(x)[None].to(self.device)
            inputs["motion_lengths"] = torch.tensor([len(x)], device=self.device)
        if video is not None:
            if self.geometry is None:
                raise ValueError("this model has no video tower")
            counts[m.video_token_id] = cfg.video.num_frames * self.geometry["tokens_per_frame"]
            inputs["frames"] = torch.from_numpy(decode_frames(video, cfg.video.num_frames, self.geometry))[None].to(self.device)
        ids, _ = expand_placeholders(ids, None, counts)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else torch.no_grad()
        with autocast:
            (out,) = m.generate(torch.from_numpy(ids)[None].to(self.device), max_new_tokens=max_new_tokens,
                                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id, **inputs)  # fmt: skip
        return self.tokenizer.decode(out, skip_special_tokens=True).strip()
