"""Reading a build for training: the train split's motion Mean/Std, the instruction rows a config selects and
their tokenization, and the two ways in — ``local_tables`` through ``datasets`` (``model.shards.load_table``,
one process or torchrun) and ``ray_datasets`` through ``ray.data.read_parquet`` on the driver with each Ray
Train worker assembling the materialised blocks (``ray_tables``). Either gives the three tables
``model.data.TrainData`` indexes: samples (tokenized conversations), motions and videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from model.config import TrainConfig
from model.template import encode_conversation
from schemas import SCHEMA_VERSION
from schemas.manifest import load as load_manifest
from schemas.motion import FEATURE_DIM, FEATURE_LAYOUT

__all__ = [
    "INSTRUCTION_COLUMNS",
    "MotionStats",
    "SampleEncoder",
    "check_build",
    "feature_moments",
    "frames_numpy",
    "local_motion_stats",
    "local_tables",
    "ray_datasets",
    "ray_motion_stats",
    "ray_tables",
    "select_instructions",
    "stats_from_moments",
    "wanted_modalities",
]

INSTRUCTION_COLUMNS = ["sample_id", "modality", "task", "motion_id", "video_id", "conversations"]


# ---- Mean / Std of the motion features (HumanML3D's normalisation)


class MotionStats:
    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def save(self, path: str | Path) -> None:
        np.savez(path, mean=self.mean, std=self.std)

    @classmethod
    def load(cls, path: str | Path) -> MotionStats:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mean"], z["std"])

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std


def frames_numpy(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list<list<float>> chunk as ``[frames, 263]`` values and per-row frame offsets (from 0)."""
    offsets = chunk.offsets.to_numpy()
    flat = chunk.flatten().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, FEATURE_DIM), offsets - offsets[0]


def feature_moments(table: pa.Table) -> dict:
    """Frame count, per-dimension sum and sum of squares (float64) of the ``features`` of full clips; partial
    results of different batches add up."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if "parent_id" in table.column_names:  # sub-clips repeat their parent's frames
        table = table.filter(pc.is_null(table["parent_id"]))
    n, s, ss = 0, np.zeros(FEATURE_DIM), np.zeros(FEATURE_DIM)
    for chunk in table["features"].chunks:
        x = frames_numpy(chunk)[0].astype(np.float64)
        n, s, ss = n + len(x), s + x.sum(0), ss + (x * x).sum(0)
    return {"n": np.array([n]), "sum": s[None], "sumsq": ss[None]}


def stats_from_moments(moments: list[dict]) -> MotionStats:
    """Mean per dimension; Std averaged within each named group of the 263-d layout, as HumanML3D's
    ``mean_variance`` (T2M-GPT and MotionLLM normalise with those files)."""
    n = sum(float(np.sum(m["n"])) for m in moments)
    if n == 0:
        raise ValueError("no frames in the train split's full motion clips to compute Mean/Std from")
    s = sum(np.sum(m["sum"], axis=0) for m in moments)
    ss = sum(np.sum(m["sumsq"], axis=0) for m in moments)
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean**2, 0.0))
    for part in FEATURE_LAYOUT.values():
        std[part] = std[part].mean()
    std[std < 1e-6] = 1.0  # a constant group (e.g. no foot contact anywhere) is left unscaled
    return MotionStats(mean.astype(np.float32), std.astype(np.float32))


# ---- instructions: selection and tokenization (the same functions under datasets and Ray Data)


def wanted_modalities(cfg: TrainConfig) -> list[str]:
    """The configured modalities the model has encoders for."""
    return [m for m in cfg.data.modalities
            if ("motion" not in m or cfg.motion.enabled) and ("video" not in m or cfg.video.tower)]  # fmt: skip


def select_instructions(table: pa.Table, cfg: TrainConfig) -> pa.Table:
    keep = pc.and_(pc.is_in(table["task"], pa.array(cfg.data.tasks)),
                   pc.is_in(table["modality"], pa.array(wanted_modalities(cfg), pa.string())))  # fmt: skip
    if cfg.data.sample_ids is not None:
        keep = pc.and_(keep, pc.is_in(table["sample_id"], pa.array(cfg.data.sample_ids, pa.string())))
    return table.filter(keep).select(INSTRUCTION_COLUMNS)


class SampleEncoder:
    """Instruction rows → ``sample_id, motion_id, video_id, input_ids, labels`` (placeholders unexpanded).
    A class that loads the tokenizer once (a Ray Data actor keeps it between batches)."""

    def __init__(self, cfg: TrainConfig | dict):
        from model.config import train_config_from_dict
        from model.motionllm import load_tokenizer

        self.cfg = cfg if isinstance(cfg, TrainConfig) else train_config_from_dict(cfg)
        self.tokenizer, _ = load_tokenizer(self.cfg)

    def __call__(self, table: pa.Table) -> pa.Table:
        ids, labels = [], []
        for conv in table["conversations"].to_pylist():
            i, y = encode_conversation(self.tokenizer, conv, self.cfg.data.system_prompt, self.cfg.lm.chat_template)
            ids.append(i)
            labels.append(y)
        return pa.table({
            "sample_id": table["sample_id"], "modality": table["modality"],
            "motion_id": table["motion_id"], "video_id": table["video_id"],
            "input_ids": pa.array(ids, pa.list_(pa.int32())), "labels": pa.array(labels, pa.list_(pa.int32())),
        })  # fmt: skip


def _split_dir(out: str | Path, table: str, split: str) -> Path:
    return Path(out) / table / split


def check_build(out: str | Path) -> None:
    from model.shards import ShardMismatch

    manifest = load_manifest(out)
    if manifest.schema_version != SCHEMA_VERSION:
        raise ShardMismatch(f"{out}: schema {manifest.schema_version}, this movid reads {SCHEMA_VERSION}")


# ---- the local way in: datasets


def _hf_table(out, table: str, split: str, cache_dir=None) -> pa.Table | None:
    from model.shards import load_table

    dd = load_table(out, table, cache_dir)
    name = "validation" if split == "val" else split  # datasets' name for HumanML3D's val
    return dd[name].data.table if name in dd else None


def local_motion_stats(out: str | Path, cache_dir=None) -> MotionStats:
    table = _hf_table(out, "motion", "train", cache_dir)
    if table is None:
        raise ValueError(f"{out}: no train split of the motion table to compute Mean/Std from")
    return stats_from_moments([feature_moments(b) for b in table.select(["parent_id", "features"]).to_batches(4096)])


def local_tables(cfg: TrainConfig, out: str | Path, cache_dir=None) -> dict[str, pa.Table | None]:
    """samples / motions / videos of ``cfg.data.split`` through ``datasets`` (memory-mapped Arrow)."""
    inst = _hf_table(out, "instruction", cfg.data.split, cache_dir)
    if inst is None:
        raise ValueError(f"{out}: no {cfg.data.split} split in the instruction table")
    samples = SampleEncoder(cfg)(select_instructions(inst, cfg))
    motions = videos = None
    if cfg.motion.enabled:
        t = _hf_table(out, "motion", cfg.data.split, cache_dir)
        motions = t.select(["motion_id", "features"]) if t is not None else None
    if cfg.video.tower:
        t = _hf_table(out, "video", cfg.data.split, cache_dir)
        videos = t.select(["video_id", "frames"]) if t is not None else None
    return {"samples": samples, "motions": motions, "videos": videos}


# ---- the Ray way in: ray.data.read_parquet on the driver, blocks assembled in each Ray Train worker


def ray_motion_stats(out: str | Path) -> MotionStats:
    import ray.data

    ds = ray.data.read_parquet(str(_split_dir(out, "motion", "train")), columns=["parent_id", "features"])
    parts = ds.map_batches(feature_moments, batch_format="pyarrow", batch_size=None).take_all()
    return stats_from_moments([{k: np.asarray(p[k])[None] for k in ("n", "sum", "sumsq")} for p in parts])


def ray_datasets(cfg: TrainConfig, out: str | Path) -> dict:
    """Materialised Ray Datasets ``samples`` (tokenized on a Ray Data actor), ``motions`` and ``videos``."""
    import ray.data

    from model.config import config_to_dict

    check_build(out)
    split = cfg.data.split
    inst_dir = _split_dir(out, "instruction", split)
    if not inst_dir.is_dir():
        raise ValueError(f"{out}: no {split} split in the instruction table")
    samples = (ray.data.read_parquet(str(inst_dir), columns=INSTRUCTION_COLUMNS)
               .map_batches(select_instructions, fn_kwargs={"cfg": cfg}, batch_format="pyarrow", batch_size=None)
               .map_batches(SampleEncoder, fn_constructor_kwargs={"cfg": config_to_dict(cfg)}, batch_format="pyarrow",
                            batch_size=1024, concurrency=1))  # fmt: skip
    out_sets = {"samples": samples.materialize()}
    if cfg.motion.enabled and _split_dir(out, "motion", split).is_dir():
        out_sets["motions"] = ray.data.read_parquet(str(_split_dir(out, "motion", split)),
                                                    columns=["motion_id", "features"]).materialize()  # fmt: skip
    if cfg.video.tower and _split_dir(out, "video", split).is_dir():
        out_sets["videos"] = ray.data.read_parquet(str(_split_dir(out, "video", split)),
                                                   columns=["video_id", "frames"]).materialize()  # fmt: skip
    return out_sets


def ray_tables() -> dict[str, pa.Table | None]:
    """Inside a Ray Train worker: the whole (unsplit) datasets as Arrow tables, zero-copy from the object store
    of this node. Every worker holds all samples; ``epoch_plan`` decides which it trains on."""
    import ray.train

    tables = {}
    for name in ("samples", "motions", "videos"):
        try:
            shard = ray.train.get_dataset_shard(name)
        except KeyError:
            shard = None
        if shard is None:
            tables[name] = None
            continue
        blocks = list(shard.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0))
        tables[name] = pa.concat_tables(blocks) if blocks else None
    return tables
