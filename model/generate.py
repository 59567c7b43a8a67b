"""Answers from a trained checkpoint: the run's config rebuilds the model from its local folders, the
checkpoint's trainable weights and motion Mean/Std go in, and the prompt is the training template's. A blind
twin's config (``motion.blind`` / ``video.blind``) makes the rebuilt model zero those inputs, as in training."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads
import torch
import yaml

from model.checkpoint import CONFIG, STATS, load_trainable, resolve_checkpoint
from model.config import train_config_from_dict
from model.data import MotionStats, decode_frames
from model.distributed import set_cpu_threads
from model.motionllm import build_model, motion_token_count, video_tower_geometry
from model.template import MOTION_TOKEN, VIDEO_TOKEN, encode_prompt, expand_placeholders
from model.train_log import quiet_libraries
from pipeline import ConfigError
from schemas.config_schema import set_dotted

__all__ = ["Answerer", "fetch_motion", "fetch_video"]


def _fetch(out: str | Path, table: str, key: str, value: str, column: str):
    folder = Path(out) / table
    if not folder.is_dir():
        raise FileNotFoundError(f"{out}: no {table} table")
    data = pads.dataset(str(folder), format="parquet")
    found = data.to_table(columns=[column], filter=pc.field(key) == value)
    if len(found) == 0:
        ids = data.to_table(columns=[key])[key]
        some = ", ".join(sorted(ids.slice(0, 2000).to_pylist())[:5])
        raise ConfigError(f"{out}: no {table} with {key} {value!r}; it has {len(ids)} (e.g. {some or 'none'}; "
                          f"movid inspect {out} lists the tables)")  # fmt: skip
    return found[column][0]


def fetch_motion(out: str | Path, motion_id: str) -> np.ndarray:
    """The ``[T, 263]`` features of a motion of the build (any split)."""
    return np.asarray(_fetch(out, "motion", "motion_id", motion_id, "features").as_py(), dtype=np.float32)


def fetch_video(out: str | Path, video_id: str) -> list[bytes]:
    return _fetch(out, "video", "video_id", video_id, "frames").as_py()


class Answerer:
    """A checkpoint loaded once; ``answer`` many questions."""

    def __init__(self, checkpoint: str | Path, overrides: list[str] | None = None, device: str | None = None):
        quiet_libraries()
        self.ckpt = resolve_checkpoint(checkpoint)
        tree = yaml.safe_load((self.ckpt / CONFIG).read_text())
        for item in overrides or []:  # e.g. lm.path=… where the weights now live
            key, _, raw = item.partition("=")
            set_dotted(tree, key.strip(), raw)
        self.cfg = train_config_from_dict(tree)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu":  # as in training (train.cpu_threads): a demo runs two of these side by side
            set_cpu_threads(self.cfg.train.cpu_threads)
        self.model, self.tokenizer = build_model(self.cfg, self.device)
        load_trainable(self.model, self.ckpt, require_all=True)
        self.model.eval()
        self.stats = MotionStats.load(self.ckpt / STATS)
        self.geometry = video_tower_geometry(self.cfg) if self.cfg.video.tower else None

    def _prepare(self, question: str, motion: np.ndarray | None, video: list[bytes] | None) -> dict:
        """One prompt: token ids with the placeholders expanded, its normalised motion and decoded frames."""
        m, cfg = self.model, self.cfg
        if video is not None and VIDEO_TOKEN not in question:
            question = f"{VIDEO_TOKEN}\n{question}"
        if motion is not None and MOTION_TOKEN not in question:
            question = f"{MOTION_TOKEN}\n{question}"
        ids = encode_prompt(self.tokenizer, [{"role": "user", "content": question}], cfg.data.system_prompt,
                            cfg.lm.chat_template)  # fmt: skip
        counts, item = {}, {"motion": None, "frames": None}
        if motion is not None:
            if not cfg.motion.enabled:
                raise ValueError("this model has no motion encoder")
            item["motion"] = self.stats.normalize(np.asarray(motion, np.float32)[: cfg.motion.max_frames])
            counts[m.motion_token_id] = motion_token_count(len(item["motion"]), cfg.motion.stride_t, cfg.motion.down_t)
        if video is not None:
            if self.geometry is None:
                raise ValueError("this model has no video tower")
            counts[m.video_token_id] = cfg.video.num_frames * self.geometry["tokens_per_frame"]
            item["frames"] = decode_frames(video, cfg.video.num_frames, self.geometry)
        item["ids"], _ = expand_placeholders(ids, None, counts)
        return item

    def answer(self, question: str, motion: np.ndarray | None = None, video: list[bytes] | None = None,
               max_new_tokens: int = 128) -> str:  # fmt: skip
        return self.answer_many([(question, motion, video)], max_new_tokens=max_new_tokens)[0]

    def answer_many(self, items: list[tuple[str, np.ndarray | None, list[bytes] | None]], *, max_new_tokens: int = 128,
                    batch_size: int = 16) -> list[str]:  # fmt: skip
        """Greedy answers to ``(question, motion, video)`` items, ``batch_size`` prompts at a time (left-padded;
        prompts of similar length batched together), in the items' order."""
        prepared = [self._prepare(*item) for item in items]
        order = sorted(range(len(prepared)), key=lambda i: len(prepared[i]["ids"]))
        answers: list[str] = [""] * len(prepared)
        pad = next(i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            rows = [prepared[i] for i in chunk]
            width = max(len(r["ids"]) for r in rows)
            ids = np.full((len(rows), width), pad, np.int64)
            mask = np.zeros((len(rows), width), np.int64)
            for b, r in enumerate(rows):
                ids[b, width - len(r["ids"]) :], mask[b, width - len(r["ids"]) :] = r["ids"], 1
            inputs = {}
            motions = [r["motion"] for r in rows if r["motion"] is not None]
            if motions:
                x = np.zeros((len(motions), max(len(mo) for mo in motions), motions[0].shape[1]), np.float32)
                for b, mo in enumerate(motions):
                    x[b, : len(mo)] = mo
                inputs["motion"] = torch.from_numpy(x).to(self.device)
                inputs["motion_lengths"] = torch.tensor([len(mo) for mo in motions], device=self.device)
            frames = [r["frames"] for r in rows if r["frames"] is not None]
            if frames:
                inputs["frames"] = torch.from_numpy(np.stack(frames)).to(self.device)
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda" else nullcontext()
            with autocast:
                out = self.model.generate(torch.from_numpy(ids).to(self.device), max_new_tokens=max_new_tokens,
                                          eos_token_id=self.tokenizer.eos_token_id, pad_token_id=pad,
                                          attention_mask=torch.from_numpy(mask).to(self.device), **inputs)  # fmt: skip
            for i, row in zip(chunk, out, strict=True):
                answers[i] = self.tokenizer.decode(row, skip_special_tokens=True).strip()
        return answers
