"""Training data from a build's shards: instruction rows joined with their motion and video rows, motion
features normalised with the train split's Mean/Std, deterministic length-bucketed batches per (seed, epoch,
rank) that a resumed run can skip to, collated ahead of the trainer by threads.

Two ways in, one result: ``local_tables`` reads the shards through ``datasets`` (``model.shards.load_table``,
one process or torchrun), ``ray_datasets`` through ``ray.data.read_parquet`` on the driver, tokenizing on
Ray Data actors, and each Ray Train worker assembles the materialised blocks with ``ray_tables``. Either gives
the three tables ``TrainData`` indexes: samples (tokenized conversations), motions and videos (the reading
side is ``model/data_read.py``, re-exported here; this module indexes, plans and collates). Samples are
ordered by ``sample_id`` and batches are planned from that order alone, so executor and block order never
change what a step sees.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from model.config import TrainConfig
from model.data_read import (
    MotionStats,
    SampleEncoder,
    check_build,
    feature_moments,
    frames_numpy,
    local_motion_stats,
    local_tables,
    ray_datasets,
    ray_motion_stats,
    ray_tables,
    select_instructions,
    stats_from_moments,
    wanted_modalities,
)
from model.template import IGNORE_INDEX, MOTION_TOKEN, VIDEO_TOKEN, expand_placeholders
from schemas.motion import FEATURE_DIM

# (with the reading side, model/data_read.py, re-exported: the trainer and the tests import it from here)
__all__ = ["BatchLoader", "MotionStats", "SampleEncoder", "TrainData", "check_build", "decode_frames",
           "epoch_plan", "feature_moments", "local_motion_stats", "local_tables", "ray_datasets",
           "ray_motion_stats", "ray_tables", "select_instructions", "stats_from_moments",
           "wanted_modalities"]  # fmt: skip

log = logging.getLogger(__name__)


# ---- indexing, planning, collating


class _Ragged:
    """Row access to a list column without copying it: per chunk its flat values and row offsets."""

    def __init__(self, column: pa.ChunkedArray, frames: bool = False):
        self.parts = []
        for chunk in column.chunks:
            if frames:
                values, offsets = frames_numpy(chunk)
            else:
                offsets = chunk.offsets.to_numpy()
                values, offsets = chunk.flatten().to_numpy(zero_copy_only=False), offsets - offsets[0]
            self.parts.append((values, offsets))
        self.where = [(c, r) for c, (_, off) in enumerate(self.parts) for r in range(len(off) - 1)]

    def __getitem__(self, i: int) -> np.ndarray:
        c, r = self.where[i]
        values, off = self.parts[c]
        return values[off[r] : off[r + 1]]

    def length(self, i: int) -> int:
        c, r = self.where[i]
        off = self.parts[c][1]
        return int(off[r + 1] - off[r])


class TrainData:
    """The samples a run trains on, with their motions and videos, and how to collate them into batches."""

    def __init__(self, tables: dict, cfg: TrainConfig, stats: MotionStats | None, token_ids: dict[str, int],
                 pad_id: int, geometry: dict | None = None):  # fmt: skip
        self.cfg, self.stats, self.geometry, self.pad_id = cfg, stats, geometry, pad_id
        self.motion_id, self.video_id = token_ids[MOTION_TOKEN], token_ids[VIDEO_TOKEN]
        if tables.get("samples") is None or len(tables["samples"]) == 0:
            raise ValueError(f"no {cfg.data.split} samples of tasks {cfg.data.tasks} and modalities "
                             f"{wanted_modalities(cfg)} in the build")  # fmt: skip
        samples = tables["samples"].sort_by("sample_id")
        if len(samples) and pc.count_distinct(samples["sample_id"]).as_py() != len(samples):
            raise ValueError("duplicate sample_id in the instruction table")
        motions, videos = tables.get("motions"), tables.get("videos")
        motion_row = {m: i for i, m in enumerate(motions["motion_id"].to_pylist())} if motions is not None else {}
        video_row = {v: i for i, v in enumerate(videos["video_id"].to_pylist())} if videos is not None else {}
        self.features = _Ragged(motions["features"], frames=True) if motions is not None else None
        self.frames = videos["frames"] if videos is not None else None
        ids, labels = _Ragged(samples["input_ids"]), _Ragged(samples["labels"])
        per_frame = geometry["tokens_per_frame"] if geometry else 0
        m = cfg.motion
        keep, self.dropped = [], Counter()
        # per sample: ids, labels, motion row, video row (-1: none), motion tokens, video tokens, motion frames,
        # sequence length with the placeholders expanded
        self.rows = []
        columns = (samples[c].to_pylist() for c in ("sample_id", "modality", "motion_id", "video_id"))
        for i, (sid, modality, mid, vid) in enumerate(zip(*columns, strict=True)):
            x, y = ids[i], labels[i]
            mrow = motion_row.get(mid, -1) if "motion" in modality else -1
            vrow = video_row.get(vid, -1) if "video" in modality else -1
            if "motion" in modality and mrow < 0:
                self.dropped["missing_motion"] += 1
                continue
            if "video" in modality and vrow < 0:
                self.dropped["missing_video"] += 1
                continue
            n_frames = min(self.features.length(mrow), m.max_frames) if mrow >= 0 else 0
            n_mtok = _motion_tokens(n_frames, cfg) if mrow >= 0 else 0
            n_vtok = cfg.video.num_frames * per_frame if vrow >= 0 else 0
            if int((x == self.motion_id).sum()) != (mrow >= 0) or int((x == self.video_id).sum()) != (vrow >= 0):
                self.dropped["placeholder_mismatch"] += 1
                continue
            if vrow >= 0 and len(self.frames[vrow]) < cfg.video.num_frames:
                self.dropped["too_few_frames"] += 1
                continue
            if mrow >= 0 and n_mtok < 1:
                self.dropped["motion_too_short"] += 1
                continue
            seq = len(x) + (n_mtok - 1 if mrow >= 0 else 0) + (n_vtok - 1 if vrow >= 0 else 0)
            if seq > cfg.data.max_length:
                self.dropped["too_long"] += 1
                continue
            keep.append(sid)
            self.rows.append((x, y, mrow, vrow, n_mtok, n_vtok, n_frames, seq))
        self.sample_ids = keep
        self.seq_lens = np.array([r[-1] for r in self.rows], dtype=np.int64)
        if self.dropped:
            log.warning("skipped samples: %s", dict(self.dropped))

    def __len__(self) -> int:
        return len(self.rows)

    def motion(self, row: int, n_frames: int) -> np.ndarray:
        return self.stats.normalize(self.features[row][:n_frames])

    def video(self, row: int) -> np.ndarray:
        return decode_frames(self.frames[row].as_py(), self.cfg.video.num_frames, self.geometry)

    def collate(self, indices) -> dict:
        rows = [self.rows[i] for i in indices]
        seqs = [expand_placeholders(x, y, {self.motion_id: nm, self.video_id: nv}) for x, y, _, _, nm, nv, _, _ in rows]
        length = max(len(s[0]) for s in seqs)
        input_ids = np.full((len(rows), length), self.pad_id, np.int64)
        labels = np.full((len(rows), length), IGNORE_INDEX, np.int64)
        attention = np.zeros((len(rows), length), np.int64)
        for b, (x, y) in enumerate(seqs):
            input_ids[b, : len(x)], labels[b, : len(y)], attention[b, : len(x)] = x, y, 1
        batch = {"input_ids": torch.from_numpy(input_ids), "labels": torch.from_numpy(labels),
                 "attention_mask": torch.from_numpy(attention), "motion": None, "motion_lengths": None, "frames": None}  # fmt: skip
        motions = [(r[2], r[6]) for r in rows if r[2] >= 0]
        if motions:
            t_max = max(n for _, n in motions)
            motion = np.zeros((len(motions), t_max, FEATURE_DIM), np.float32)
            for b, (row, n) in enumerate(motions):
                motion[b, :n] = self.motion(row, n)
            batch["motion"] = torch.from_numpy(motion)
            batch["motion_lengths"] = torch.tensor([n for _, n in motions])
        videos = [r[3] for r in rows if r[3] >= 0]
        if videos:
            batch["frames"] = torch.from_numpy(np.stack([self.video(v) for v in videos]))
        # HF shifts labels by one inside the loss: the items it averages over are the labels after the first.
        batch["num_items"] = int((labels[:, 1:] != IGNORE_INDEX).sum())
        batch["num_tokens"] = int(attention.sum())
        return batch


def _motion_tokens(n_frames: int, cfg: TrainConfig) -> int:
    from model.motionllm import motion_token_count

    return motion_token_count(n_frames, cfg.motion.stride_t, cfg.motion.down_t)


def decode_frames(jpegs: list[bytes], num_frames: int, geometry: dict) -> np.ndarray:
    """``num_frames`` of the JPEG frames (uniformly picked) as a normalised ``[F, 3, S, S]`` float32 array:
    shortest side resized to the tower's image size (bicubic), centre crop, mean/std (CLIP's preprocessing)."""
    from PIL import Image

    size = geometry["image_size"]
    pick = np.linspace(0, len(jpegs) - 1, num_frames).round().astype(int)
    out = np.empty((num_frames, 3, size, size), np.float32)
    mean = np.asarray(geometry["mean"], np.float32)[:, None, None]
    std = np.asarray(geometry["std"], np.float32)[:, None, None]
    for k, j in enumerate(pick):
        im = Image.open(io.BytesIO(jpegs[j]))
        scale = size / min(im.size)
        w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
        im.draft("RGB", (w, h))  # a JPEG shrinks by 1/2, 1/4 or 1/8 while it decodes (never below w × h)
        im = im.convert("RGB")
        if im.size != (w, h):  # the shards' 224-px frames need no resize for a 224-px tower
            im = im.resize((w, h), Image.BICUBIC, reducing_gap=3.0)
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        out[k] = (np.asarray(im, np.float32).transpose(2, 0, 1) / 255.0 - mean) / std
    return out


def epoch_plan(seq_lens: np.ndarray, *, seed: int, epoch: int, batch_size: int, world_size: int,
               bucketing: bool = True, bucket_batches: int = 32) -> np.ndarray:  # fmt: skip
    """Sample indices ``[batches, world_size, batch_size]`` of one epoch: rank r trains on ``plan[:, r]``.

    A permutation seeded by (seed, epoch); with bucketing, each chunk of ``bucket_batches`` global batches is
    sorted by length before it is cut into batches (each rank's share of a batch then has similar lengths,
    as HF's LengthGroupedSampler), and the batches are shuffled again. What does not fill a global batch is
    left out of this epoch (a different remainder every epoch)."""
    n = len(seq_lens)
    rng = np.random.default_rng([seed, epoch])
    per_batch = batch_size * world_size
    n_batches = n // per_batch
    if n_batches == 0:
        raise ValueError(f"{n} samples do not fill one batch of {batch_size} per worker × {world_size} workers")
    order = rng.permutation(n)[: n_batches * per_batch]
    if bucketing:
        chunk = per_batch * bucket_batches
        order = np.concatenate([c[np.argsort(-seq_lens[c], kind="stable")]
                                for c in np.split(order, range(chunk, len(order), chunk))])  # fmt: skip
    batches = order.reshape(n_batches, world_size, batch_size)
    return batches[rng.permutation(n_batches)] if bucketing else batches


class BatchLoader:
    """One rank's batches of one epoch from micro-batch ``start`` on, collated ``prefetch`` batches ahead on
    ``threads`` threads (JPEG decoding and numpy release the GIL); ``threads=0`` collates inline."""

    def __init__(self, data: TrainData, batches: np.ndarray, start: int = 0, threads: int = 2, prefetch: int = 4):
        self.data, self.batches, self.start, self.threads, self.prefetch = data, batches, start, threads, prefetch

    def __len__(self) -> int:
        return max(len(self.batches) - self.start, 0)

    def __iter__(self):
        todo = range(self.start, len(self.batches))
        if self.threads == 0:
            for k in todo:
                yield k, self.data.collate(self.batches[k])
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="collate") as pool:
            pending = []
            for k in todo:
                pending.append((k, pool.submit(self.data.collate, self.batches[k])))
                if len(pending) > self.prefetch:
                    j, fut = pending.pop(0)
                    yield j, fut.result()
            for j, fut in pending:
                yield j, fut.result()
