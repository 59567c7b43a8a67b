"""The training loop and its launchers. ``train_loop`` is ordinary PyTorch, read top to bottom, and runs
unchanged in one process (``--executor local``), under torchrun (``torchrun --nproc-per-node N -m model.train
…``) or as Ray Train's ``train_loop_per_worker`` (``train``: TorchTrainer, DDP by default, FSDP as an
option; gloo on CPU, nccl on GPU).

A run folder holds ``config.yaml``, ``motion_stats.npz`` (Mean/Std of the train split), ``metrics.jsonl`` (one
line per logged step), ``tensorboard/`` and ``checkpoints/step-NNNNNNNN/``. Every optimizer step re-seeds
the RNG from (seed, step, rank) and batches come from ``model.data.epoch_plan``, so a run resumed from a
checkpoint continues with the very losses the uninterrupted run has.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from model.checkpoint import (
    CONFIG,
    OPTIMIZER,
    SCHEDULER,
    STATS,
    latest_checkpoint,
    load_trainable,
    prune_checkpoints,
    read_state,  # fmt: skip
    resolve_checkpoint,
    write_checkpoint,
)
from model.config import ConfigError, TrainConfig, config_to_dict, load_train_config, train_config_from_dict
from model.data import BatchLoader, MotionStats, TrainData, epoch_plan, local_motion_stats, local_tables

__all__ = ["RunExists", "Runtime", "main", "prepare_run", "read_metrics", "set_cpu_threads", "train", "train_loop"]

log = logging.getLogger("model.train")  # also under ``python -m model.train``
METRICS = "metrics.jsonl"
# Settings a resumed run may change: where and how it runs, how long, how often it logs and saves.
RESUMABLE_CHANGES = {"lm.path", "lm.gguf_file", "lm.tokenizer", "video.tower", "motion.vqvae_checkpoint", "train.init_from",
                     "train.cpu_threads", "train.stop_at_step", "train.max_steps", "train.epochs", "train.log_every", "train.save_every",
                     "train.keep_checkpoints", "train.workers", "train.use_gpu", "train.tensorboard", "train.max_failures",
                     "train.ray_address", "train.ray_num_cpus", "train.ray_object_store_memory",
                     "data.loader_threads", "data.prefetch_batches"}  # fmt: skip


class RunExists(ConfigError):
    pass


@dataclass
class Runtime:
    """Where this process trains: its rank among ``world`` processes and its device."""

    kind: str  # local | torchrun | ray
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    local_world: int = 1  # processes of this run on this node

    @classmethod
    def start(cls, kind: str, use_gpu: bool | None) -> Runtime:
        if kind == "ray":
            import ray.train
            import ray.train.torch

            ctx = ray.train.get_context()  # Ray Train has set up the process group (TorchConfig's backend)
            return cls("ray", ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank(), ray.train.torch.get_device(),
                       ctx.get_local_world_size())  # fmt: skip
        cuda = torch.cuda.is_available() and use_gpu is not False
        if kind == "torchrun":
            local_rank = int(os.environ.get("LOCAL_RANK", 0))
            if cuda:
                torch.cuda.set_device(local_rank)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if cuda else "gloo")
            device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
            return cls("torchrun", dist.get_rank(), dist.get_world_size(), local_rank, device,
                       int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())))  # fmt: skip
        return cls("local", device=torch.device("cuda", 0) if cuda else torch.device("cpu"))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_reduce(self, values: list[float]) -> list[float]:
        """Sums over all processes."""
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()


# ---- pieces of the loop


def _wrap(model, cfg: TrainConfig, rt: Runtime):
    if cfg.train.strategy == "fsdp" and rt.world > 1:
        # FSDP2: each decoder layer, the motion encoder and the vision tower are shard groups, the rest the root's.
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(rt.device.type, (rt.world,))
        bf16 = rt.device.type == "cuda" and cfg.train.precision != "fp32"
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
        base = model.lm.get_base_model() if hasattr(model.lm, "get_base_model") else model.lm
        layers = [m for m in base.modules() if type(m).__name__ in (base._no_split_modules or [])]
        for module in [*layers, model.motion_encoder, model.video_tower]:
            if module is not None:
                fully_shard(module, mesh=mesh, mp_policy=mp)
        return fully_shard(model, mesh=mesh, mp_policy=mp)
    if rt.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return model


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _make_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
    from model.motionllm import trainable_groups

    o = cfg.optim
    lrs = {"motion_encoder": o.lr_motion_encoder, "projector": o.lr_projector, "lm": o.lr_lm}
    groups = []
    for name, params in trainable_groups(model).items():
        lr = o.lr if lrs.get(name) is None else lrs[name]
        decay = [p for n, p in params if p.ndim >= 2 and "codebook" not in n]
        rest = [p for n, p in params if not (p.ndim >= 2 and "codebook" not in n)]
        groups += [{"params": decay, "lr": lr, "weight_decay": o.weight_decay, "name": name},
                   {"params": rest, "lr": lr, "weight_decay": 0.0, "name": f"{name}_no_decay"}]  # fmt: skip
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("nothing to train: lm.mode=frozen, no motion encoder or projector trains")
    return torch.optim.AdamW(groups, betas=tuple(o.betas))


def _make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    warmup = math.ceil(cfg.optim.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.optim.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return max(0.0, 1 - progress) if cfg.optim.schedule == "linear" else 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _how(cfg: TrainConfig, rt: Runtime) -> str:
    """How the model trains, for the log: launcher, process-group backend, wrapping, precision. (One process
    trains the model unwrapped, whatever ``train.strategy`` says.)"""
    wrap = cfg.train.strategy if rt.world > 1 else "unwrapped"
    backend = dist.get_backend() if dist.is_available() and dist.is_initialized() else "no process group"
    precision = "fp32" if isinstance(_autocast(cfg, rt.device), nullcontext) else "bf16 autocast"
    threads = f", {torch.get_num_threads()} intra-op thread(s)" if rt.device.type == "cpu" else ""
    return f"{rt.kind}, {backend}, {wrap}, {precision}{threads}"


def set_cpu_threads(threads: int, local_workers: int = 1) -> int:
    """Intra-op threads of this CPU process: ``threads``, or with 0 this node's cores shared among its
    ``local_workers`` processes. Processes that each use every core (torch's default) thrash a small machine."""
    n = threads or max(1, (os.cpu_count() or 1) // max(1, local_workers))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def _autocast(cfg: TrainConfig, device: torch.device):
    if device.type == "cuda" and cfg.train.precision != "fp32":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cfg.train.precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()


def _seed_step(seed: int, step: int, rank: int) -> None:
    # Dropout (LoRA's, the LM's) draws from the global RNG: seeding it per step makes a resumed step draw the
    # same masks as the uninterrupted one without saving RNG states.
    torch.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))


def _to_device(batch: dict, device: torch.device) -> dict:
    keys = ("input_ids", "labels", "attention_mask", "motion", "motion_lengths", "frames")
    return {k: (batch[k].to(device, non_blocking=True) if batch[k] is not None else None) for k in keys}


def _trainable_state(model, optimizer, fsdp: bool) -> tuple[dict, dict]:
    """(trainable weights by bare name, optimizer state), gathered whole on every rank's CPU for FSDP."""
    from model.motionllm import clean_name

    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        names = {clean_name(n) for n, p in model.named_parameters() if p.requires_grad}
        weights, optim = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: v for k, v in weights.items() if clean_name(k) in names}, optim
    bare = _unwrap(model)
    return {n: p for n, p in bare.named_parameters() if p.requires_grad}, optimizer.state_dict()


def _load_optimizer(model, optimizer, state: dict, fsdp: bool) -> None:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)


class _MetricsLog:
    """Rank 0's record of logged steps: metrics.jsonl, TensorBoard when it is installed, Ray Train reports."""

    def __init__(self, run: Path, rt: Runtime, cfg: TrainConfig):
        self.rt, self.path, self.writer, self.last = rt, run / METRICS, None, None
        if rt.rank == 0 and cfg.train.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run / "tensorboard"))
            except ImportError:
                log.info("tensorboard is not installed: no TensorBoard logs (pip install tensorboard); metrics.jsonl has them")

    def write(self, record: dict) -> None:
        if self.rt.rank == 0:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if self.writer is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                        self.writer.add_scalar(f"train/{k}", v, record["step"])
                self.writer.flush()
        self.last = record

    def report(self) -> None:
        """Ray Train's record of the run (at checkpoints only: a report is a barrier of about a second)."""
        if self.rt.kind == "ray" and self.last is not None:
            import ray.train

            ray.train.report(self.last)  # every worker reports; rank 0's metrics are kept

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---- the loop


def train_loop(config: dict) -> None:
    """One worker's training: ``config`` holds ``cfg`` (the TrainConfig as a dict), ``run`` (the run folder,
    prepared by ``prepare_run``), ``data`` (the build) and ``executor`` (local | torchrun | ray)."""
    from model.motionllm import build_model, video_tower_geometry
    from model.template import MOTION_TOKEN, VIDEO_TOKEN

    _quiet_libraries()
    cfg = train_config_from_dict(config["cfg"])
    run = Path(config["run"])
    rt = Runtime.start(config["executor"], cfg.train.use_gpu)
    if rt.kind == "ray" and not logging.getLogger("model").handlers:  # Ray workers start without a log handler
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("model").addHandler(handler)
        logging.getLogger("model").setLevel(logging.INFO)
    t, o = cfg.train, cfg.optim
    if rt.device.type == "cpu":
        set_cpu_threads(cfg.train.cpu_threads, rt.local_world)

    t_start = time.perf_counter()
    model, tokenizer = build_model(cfg, rt.device)
    t_model = time.perf_counter()
    stats = MotionStats.load(run / STATS)
    geometry = video_tower_geometry(cfg) if cfg.video.tower else None
    if rt.kind == "ray":
        from model.data import ray_tables

        _quiet_ray_data()
        tables = ray_tables()
    else:
        tables = local_tables(cfg, config["data"])
    pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id, 0) if i is not None)
    data = TrainData(tables, cfg, stats, {MOTION_TOKEN: model.motion_token_id, VIDEO_TOKEN: model.video_token_id},
                     pad_id, geometry)  # fmt: skip

    if rt.rank == 0:
        log.info("model built in %.1fs, data indexed in %.1fs", t_model - t_start, time.perf_counter() - t_model)
    position = {"step": 0, "epoch": 0, "micro": 0}
    resume = latest_checkpoint(run)
    if resume is not None:
        load_trainable(model, resume, require_all=True)
        position = read_state(resume)
        if (position.get("world_size"), position.get("batch_size")) != (rt.world, t.batch_size) and rt.rank == 0:
            log.warning("resuming %s with %d workers × batch %d (saved with %s × %s): the data order differs from an "
                        "uninterrupted run", resume, rt.world, t.batch_size, position.get("world_size"), position.get("batch_size"))  # fmt: skip
    elif t.init_from:
        fresh = load_trainable(model, resolve_checkpoint(t.init_from), require_all=False)
        if rt.rank == 0:
            log.info("initialised from %s; starting fresh: %d trainable tensors (e.g. %s)", t.init_from, len(fresh), fresh[:2])
    model.train()
    fsdp = t.strategy == "fsdp" and rt.world > 1
    model = _wrap(model, cfg, rt)
    optimizer = _make_optimizer(model, cfg)

    def plan_of(epoch: int) -> np.ndarray:
        plan = epoch_plan(data.seq_lens, seed=t.seed, epoch=epoch, batch_size=t.batch_size, world_size=rt.world,
                          bucketing=cfg.data.bucketing, bucket_batches=cfg.data.bucket_batches)[:, rt.rank]  # fmt: skip
        return plan[: len(plan) // t.grad_accum * t.grad_accum]  # accumulation never spans two epochs

    steps_per_epoch = len(plan_of(0)) // t.grad_accum
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data)} samples give no optimizer step of {t.grad_accum} micro-batches of "
                         f"{t.batch_size} × {rt.world} workers")  # fmt: skip
    total = t.max_steps or steps_per_epoch * t.epochs
    scheduler = _make_scheduler(optimizer, cfg, total)
    if resume is not None:
        _load_optimizer(model, optimizer, torch.load(resume / OPTIMIZER, map_location="cpu", weights_only=True), fsdp)
        scheduler.load_state_dict(torch.load(resume / SCHEDULER, weights_only=True))
    stop = min(total, t.stop_at_step or total)
    step, epoch, micro = position["step"], position["epoch"], position["micro"]
    params = [p for p in model.parameters() if p.requires_grad]
    metrics = _MetricsLog(run, rt, cfg)
    if rt.rank == 0:
        log.info("training %d samples (%d steps per epoch, %d in all) on %d %s worker(s) (%s), from step %d",
                 len(data), steps_per_epoch, total, rt.world, rt.device.type, _how(cfg, rt), step)  # fmt: skip
        blind = [name for name, on in (("motion", cfg.motion.blind), ("video", cfg.video.blind)) if on]
        if blind:
            log.info("blind twin: the model sees zeroed %s of the same length", " and ".join(blind))
    window = dict(ce=0.0, items=0.0, samples=0.0, tokens=0.0, data_s=0.0, t0=time.perf_counter())
    while step < stop:
        plan = plan_of(epoch)
        batches = iter(BatchLoader(data, plan, micro, cfg.data.loader_threads, cfg.data.prefetch_batches))
        this_epoch = epoch
        while step < stop and epoch == this_epoch:
            t_wait = time.perf_counter()
            micro_batches = [next(batches)[1] for _ in range(t.grad_accum)]
            window["data_s"] += time.perf_counter() - t_wait
            _seed_step(t.seed, step, rt.rank)
            # Answer tokens of this optimizer step over all ranks: each micro-batch's summed cross-entropy is divided
            # by it (times the world size, which DDP's gradient mean divides out again): a token-level mean.
            items = max(rt.all_reduce([sum(b["num_items"] for b in micro_batches)])[0], 1.0)
            for j, batch in enumerate(micro_batches):
                last = j == t.grad_accum - 1
                with model.no_sync() if (not last and rt.world > 1 and not fsdp) else nullcontext():
                    with _autocast(cfg, rt.device):
                        lm_loss, aux = model(**_to_device(batch, rt.device), num_items=items / rt.world)
                    (lm_loss + aux / t.grad_accum).backward()
                window["ce"] += lm_loss.item() * items / rt.world
                window["samples"] += len(batch["input_ids"])
                window["tokens"] += batch["num_tokens"]
            window["items"] += items / rt.world
            if o.max_grad_norm > 0:
                norm = torch.nn.utils.clip_grad_norm_(params, o.max_grad_norm)
                grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # a DTensor under FSDP
            else:
                grad_norm = float("nan")
            lrs = {g["name"]: g["lr"] for g in optimizer.param_groups if not g["name"].endswith("_no_decay")}
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step, micro = step + 1, micro + t.grad_accum
            if micro >= len(plan):
                epoch, micro = epoch + 1, 0
            if step % t.log_every == 0 or step == stop:
                ce, n_items, samples, tokens, data_s = rt.all_reduce([window[k] for k in ("ce", "items", "samples", "tokens", "data_s")])
                elapsed = time.perf_counter() - window["t0"]
                record = {"step": step, "epoch": epoch, "loss": ce / max(n_items, 1), "grad_norm": grad_norm,
                          **{f"lr_{k}": v for k, v in lrs.items()}, "samples": int(samples), "tokens": int(tokens),
                          "samples_per_s": samples / elapsed, "tokens_per_s": tokens / elapsed,
                          "data_wait_share": data_s / rt.world / elapsed, "time": time.time()}  # fmt: skip
                metrics.write(record)
                window = dict(ce=0.0, items=0.0, samples=0.0, tokens=0.0, data_s=0.0, t0=time.perf_counter())
            if step % t.save_every == 0 or step == stop:
                weights, optim_state = _trainable_state(model, optimizer, fsdp)
                if rt.rank == 0:
                    state = {"epoch": epoch, "micro": micro, "world_size": rt.world, "batch_size": t.batch_size,
                             "grad_accum": t.grad_accum, "total_steps": total}  # fmt: skip
                    write_checkpoint(run, step, weights, optim_state, scheduler.state_dict(), state, run / STATS,
                                     config_to_dict(cfg))  # fmt: skip
                    prune_checkpoints(run, t.keep_checkpoints)
                rt.barrier()
                metrics.report()
        batches.close()
    metrics.close()


# ---- the driver side


def _quiet_ray_data() -> None:
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights come from local folders only
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:
        pass


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def read_metrics(run: str | Path) -> list[dict]:
    path = Path(run) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def prepare_run(cfg: TrainConfig, data: Path, run: Path, resume: bool, stats_fn) -> int:
    """Create or check the run folder (config, motion Mean/Std); the step training starts from."""
    init_from = None
    if cfg.train.init_from:
        try:
            init_from = resolve_checkpoint(cfg.train.init_from)
        except FileNotFoundError as exc:
            raise ConfigError(f"train.init_from: {exc}") from None
    run.mkdir(parents=True, exist_ok=True)
    latest = latest_checkpoint(run)
    if latest is not None and not resume:
        raise RunExists(f"{run} already holds checkpoints (latest {latest.name}): add --resume to continue it, "
                        "or give another --out")  # fmt: skip
    saved = run / CONFIG
    if latest is not None and saved.is_file():
        # through the config class: a key the run's older config lacks has its default
        before = _flat(config_to_dict(train_config_from_dict(yaml.safe_load(saved.read_text()) or {})))
        now = _flat(config_to_dict(cfg))
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise ConfigError(f"--resume: the config differs from the run's in {', '.join(changed)} "
                              f"(the run's is {saved}); a changed model or data needs a new run")  # fmt: skip
    saved.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    if latest is not None and (run / STATS).is_file():
        pass  # the Mean/Std the checkpoints were trained with
    elif init_from is not None:
        MotionStats.load(init_from / STATS).save(run / STATS)
    else:
        stats_fn().save(run / STATS)
    step = read_state(latest)["step"] if latest is not None else 0
    metrics = run / METRICS
    if metrics.is_file():  # steps logged after the checkpoint we resume from will be logged again
        keep = [r for r in read_metrics(run) if r["step"] <= step]
        metrics.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return step


@contextmanager
def _progress(run: Path, start: int, total: int, enabled: bool):
    """A progress bar fed from metrics.jsonl, whichever process or worker writes it."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    done = threading.Event()
    bar = tqdm(total=total or None, initial=start, desc="train", unit="step")

    def follow():
        seen = start
        while True:
            finished = done.wait(0.5)
            for r in read_metrics(run):
                if r["step"] > seen:
                    bar.update(r["step"] - seen)
                    seen = r["step"]
                    bar.set_postfix(loss=f"{r['loss']:.4f}", refresh=False)
            if finished:
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()


def _init_ray(cfg: TrainConfig) -> bool:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    if cfg.train.ray_address:
        import configs
        import model
        import pipeline
        import schemas

        # Ship movid's code with the job; its dependencies (torch, transformers, peft) must be on the nodes.
        ray.init(address=cfg.train.ray_address, runtime_env={"py_modules": [model, pipeline, schemas, configs]})
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="local", num_cpus=cfg.train.ray_num_cpus, object_store_memory=cfg.train.ray_object_store_memory,
                 include_dashboard=False, log_to_driver=True)  # fmt: skip
    return True


def train(cfg: TrainConfig, data: str | Path, run: str | Path, *, executor: str = "ray", workers: int | None = None,
          resume: bool = False, show_progress: bool = True) -> dict:  # fmt: skip
    """Train ``cfg`` on the build ``data`` into the run folder ``run``; the last logged metrics."""
    from model.data import check_build
    from model.motionllm import check_weights

    _quiet_libraries()
    data, run = Path(data).resolve(), Path(run).resolve()
    check_build(data)
    check_weights(cfg)
    cfg.train.workers = workers or cfg.train.workers
    if executor not in ("ray", "local"):
        raise ConfigError(f"--executor: ray or local, got {executor!r}")
    if executor == "local":
        if cfg.train.workers != 1:
            raise ConfigError("--executor local trains in this process: --workers 1 (torchrun or Ray for more)")
        start = prepare_run(cfg, data, run, resume, lambda: local_motion_stats(data))
        with _progress(run, start, cfg.train.stop_at_step or cfg.train.max_steps or 0, show_progress):
            train_loop({"cfg": config_to_dict(cfg), "run": str(run), "data": str(data), "executor": "local"})
        return (read_metrics(run) or [{}])[-1]

    import ray
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from model.data import ray_datasets, ray_motion_stats

    started = _init_ray(cfg)
    _quiet_ray_data()
    try:
        t0 = time.perf_counter()
        start = prepare_run(cfg, data, run, resume, lambda: ray_motion_stats(data))
        t1 = time.perf_counter()
        use_gpu = cfg.train.use_gpu if cfg.train.use_gpu is not None else ray.cluster_resources().get("GPU", 0) > 0
        datasets = ray_datasets(cfg, data)
        log.info("run prepared in %.1fs, Ray Data read and tokenized the samples in %.1fs", t1 - t0, time.perf_counter() - t1)
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"cfg": config_to_dict(cfg), "run": str(run), "data": str(data), "executor": "ray"},
            scaling_config=ScalingConfig(num_workers=cfg.train.workers, use_gpu=use_gpu),
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            run_config=RunConfig(name="ray", storage_path=str(run), failure_config=FailureConfig(max_failures=cfg.train.max_failures)),
            datasets=datasets,
            dataset_config=DataConfig(datasets_to_split=[]),  # every worker indexes all samples; epoch_plan shards them
        )  # fmt: skip
        with _progress(run, start, cfg.train.stop_at_step or cfg.train.max_steps or 0, show_progress):
            t2 = time.perf_counter()
            trainer.fit()
        log.info("Ray Train ran for %.1fs", time.perf_counter() - t2)
    finally:
        if started:
            ray.shutdown()
    return (read_metrics(run) or [{}])[-1]


def main(argv: list[str] | None = None) -> int:
    """torchrun entry (``torchrun --nproc-per-node N -m model.train --config … --data OUT --out RUN``); without
    torchrun's environment it trains in this one process."""
    p = argparse.ArgumentParser(prog="python -m model.train", description="Train under torchrun (or alone).")
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_train_config(args.config, args.set)
    except ConfigError as exc:
        print(f"movid: error: {exc}", file=sys.stderr)
        return 2
    data, run = Path(args.data).resolve(), Path(args.out).resolve()
    kind = "torchrun" if "RANK" in os.environ and "WORLD_SIZE" in os.environ else "local"  # torchrun sets both
    rt = Runtime.start(kind, cfg.train.use_gpu)
    cfg.train.workers = rt.world
    start, failed = 0, 0.0
    if rt.rank == 0:
        from model.data import check_build
        from model.motionllm import check_weights

        try:
            check_build(data)
            check_weights(cfg)
            start = prepare_run(cfg, data, run, args.resume, lambda: local_motion_stats(data))
        except (ConfigError, FileNotFoundError, ValueError) as exc:
            print(f"movid: error: {exc}", file=sys.stderr)
            failed = 1.0
    if rt.all_reduce([failed])[0]:  # every rank learns that rank 0 could not prepare the run, and stops
        if dist.is_initialized():
            dist.destroy_process_group()
        return 2
    with _progress(run, start, cfg.train.stop_at_step or cfg.train.max_steps or 0, rt.rank == 0):
        train_loop({"cfg": config_to_dict(cfg), "run": str(run), "data": str(data), "executor": kind})
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
