"""The training loop: ordinary PyTorch, read top to bottom. ``train_loop`` runs unchanged in one process
(``--executor local``), under torchrun or as Ray Train's ``train_loop_per_worker`` (the launchers are in
``model/train.py``; what a run reports, in ``model/train_log.py``).

Every optimizer step re-seeds the RNG from (seed, step, rank) and batches come from ``model.data.epoch_plan``,
so a run resumed from a checkpoint continues with the very losses the uninterrupted run has.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from model.checkpoint import (
    OPTIMIZER,
    SCHEDULER,
    STATS,
    latest_checkpoint,
    load_trainable,
    prune_checkpoints,
    read_state,
    resolve_checkpoint,
    write_checkpoint,
)
from model.config import ConfigError, TrainConfig, config_to_dict, train_config_from_dict
from model.data import BatchLoader, MotionStats, TrainData, epoch_plan, local_tables
from model.distributed import Runtime, load_optimizer, set_cpu_threads, trainable_state, wrap
from model.motionllm import build_model, trainable_groups, video_tower_geometry
from model.template import MOTION_TOKEN, VIDEO_TOKEN
from model.train_log import MetricsLog, quiet_libraries

__all__ = ["train_loop"]

log = logging.getLogger("model.train")  # the launchers' logger: one name for the whole run's log


# ---- pieces of the loop


def _make_optimizer(model, cfg: TrainConfig) -> torch.optim.AdamW:
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




@dataclass
class _Window:
    """Sums over the steps since the last log line."""

    ce: float = 0.0
    items: float = 0.0
    samples: float = 0.0
    tokens: float = 0.0
    data_s: float = 0.0
    t0: float = field(default_factory=time.perf_counter)


@dataclass
class _State:
    """One worker's run: its model, optimizer and data, and where in the run it is."""

    cfg: TrainConfig
    rt: Runtime
    run: Path
    model: torch.nn.Module
    data: TrainData
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR | None
    fsdp: bool
    total: int
    stop: int
    step: int
    epoch: int
    micro: int
    metrics: MetricsLog | None
    window: _Window = field(default_factory=_Window)

    def plan_of(self, epoch: int) -> np.ndarray:
        t = self.cfg.train
        plan = epoch_plan(self.data.seq_lens, seed=t.seed, epoch=epoch, batch_size=t.batch_size, world_size=self.rt.world,
                          bucketing=self.cfg.data.bucketing, bucket_batches=self.cfg.data.bucket_batches)[:, self.rt.rank]  # fmt: skip
        return plan[: len(plan) // t.grad_accum * t.grad_accum]  # accumulation never spans two epochs


def train_loop(config: dict) -> None:
    """One worker's training: ``config`` holds ``cfg`` (the TrainConfig as a dict), ``run`` (the run folder,
    prepared by ``model.train.prepare_run``), ``data`` (the build) and ``executor`` (local | torchrun | ray)."""
    quiet_libraries()
    cfg = train_config_from_dict(config["cfg"])
    rt = Runtime.start(config["executor"], cfg.train.use_gpu)
    if rt.kind == "ray" and not logging.getLogger("model").handlers:  # Ray workers start without a log handler
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("model").addHandler(handler)
        logging.getLogger("model").setLevel(logging.INFO)
    if rt.device.type == "cpu":
        set_cpu_threads(cfg.train.cpu_threads, rt.local_world)
    s = _start(cfg, rt, Path(config["run"]), config["data"])
    t = cfg.train
    while s.step < s.stop:
        plan = s.plan_of(s.epoch)
        batches = iter(BatchLoader(s.data, plan, s.micro, cfg.data.loader_threads, cfg.data.prefetch_batches))
        this_epoch = s.epoch
        while s.step < s.stop and s.epoch == this_epoch:
            t_wait = time.perf_counter()
            micro_batches = [next(batches)[1] for _ in range(t.grad_accum)]
            s.window.data_s += time.perf_counter() - t_wait
            grad_norm, lrs = _optimizer_step(s, micro_batches)
            s.step, s.micro = s.step + 1, s.micro + t.grad_accum
            if s.micro >= len(plan):
                s.epoch, s.micro = s.epoch + 1, 0
            if s.step % t.log_every == 0 or s.step == s.stop:
                _log_window(s, grad_norm, lrs)
            if s.step % t.save_every == 0 or s.step == s.stop:
                _save(s)
        batches.close()
    s.metrics.close()


def _start(cfg: TrainConfig, rt: Runtime, run: Path, data_path: str) -> _State:
    """The model (from a checkpoint to resume, or ``train.init_from``), the data, optimizer and schedule."""
    t_start = time.perf_counter()
    model, tokenizer = build_model(cfg, rt.device)
    t_model = time.perf_counter()
    stats = MotionStats.load(run / STATS)
    geometry = video_tower_geometry(cfg) if cfg.video.tower else None
    if rt.kind == "ray":
        from model.data import ray_tables  # here: it imports Ray Data (a Ray Train worker only)

        _quiet_ray_data()
        tables = ray_tables()
    else:
        tables = local_tables(cfg, data_path)
    pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id, 0) if i is not None)
    data = TrainData(tables, cfg, stats, {MOTION_TOKEN: model.motion_token_id, VIDEO_TOKEN: model.video_token_id},
                     pad_id, geometry)  # fmt: skip
    if rt.rank == 0:
        log.info("model built in %.1fs, data indexed in %.1fs", t_model - t_start, time.perf_counter() - t_model)
    position, resume = _restore(model, cfg, rt, run)
    model.train()
    fsdp = cfg.train.strategy == "fsdp" and rt.world > 1
    model = wrap(model, cfg, rt)
    optimizer = _make_optimizer(model, cfg)
    s = _State(cfg, rt, run, model, data, optimizer, None, fsdp, 0, 0, position["step"], position["epoch"],
               position["micro"], None)  # fmt: skip
    t = cfg.train
    steps_per_epoch = len(s.plan_of(0)) // t.grad_accum
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data)} samples give no optimizer step of {t.grad_accum} micro-batches of "
                         f"{t.batch_size} × {rt.world} workers")  # fmt: skip
    s.total = t.max_steps or steps_per_epoch * t.epochs
    s.scheduler = _make_scheduler(optimizer, cfg, s.total)
    if resume is not None:
        load_optimizer(model, optimizer, torch.load(resume / OPTIMIZER, map_location="cpu", weights_only=True), fsdp)
        s.scheduler.load_state_dict(torch.load(resume / SCHEDULER, weights_only=True))
    s.stop = min(s.total, t.stop_at_step or s.total)
    s.metrics = MetricsLog(run, rt.rank, rt.kind == "ray", t.tensorboard)
    if rt.rank == 0:
        _log_start(s, steps_per_epoch)
    s.window = _Window()  # the first log line's rates count from here
    return s


def _restore(model, cfg: TrainConfig, rt: Runtime, run: Path) -> tuple[dict, Path | None]:
    """Load the run's latest checkpoint (to resume) or ``train.init_from``; (position, checkpoint resumed)."""
    t = cfg.train
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
    return position, resume


def _log_start(s: _State, steps_per_epoch: int) -> None:
    log.info("training %d samples (%d steps per epoch, %d in all) on %d %s worker(s) (%s), from step %d",
             len(s.data), steps_per_epoch, s.total, s.rt.world, s.rt.device.type, _how(s.cfg, s.rt), s.step)  # fmt: skip
    blind = [name for name, on in (("motion", s.cfg.motion.blind), ("video", s.cfg.video.blind)) if on]
    if blind:
        log.info("blind twin: the model sees zeroed %s of the same length", " and ".join(blind))


def _optimizer_step(s: _State, micro_batches: list[dict]) -> tuple[float, dict]:
    """One optimizer step over ``grad_accum`` micro-batches; (gradient norm, learning rate per group)."""
    t, rt, model, w = s.cfg.train, s.rt, s.model, s.window
    _seed_step(t.seed, s.step, rt.rank)
    # Answer tokens of this optimizer step over all ranks: each micro-batch's summed cross-entropy is divided
    # by it (times the world size, which DDP's gradient mean divides out again): a token-level mean.
    items = max(rt.all_reduce([sum(b["num_items"] for b in micro_batches)])[0], 1.0)
    for j, batch in enumerate(micro_batches):
        last = j == t.grad_accum - 1
        with model.no_sync() if (not last and rt.world > 1 and not s.fsdp) else nullcontext():
            with _autocast(s.cfg, rt.device):
                lm_loss, aux = model(**_to_device(batch, rt.device), num_items=items / rt.world)
            (lm_loss + aux / t.grad_accum).backward()
        w.ce += lm_loss.item() * items / rt.world
        w.samples += len(batch["input_ids"])
        w.tokens += batch["num_tokens"]
    w.items += items / rt.world
    if s.cfg.optim.max_grad_norm > 0:
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, s.cfg.optim.max_grad_norm)
        grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # a DTensor under FSDP
    else:
        grad_norm = float("nan")
    lrs = {g["name"]: g["lr"] for g in s.optimizer.param_groups if not g["name"].endswith("_no_decay")}
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    return grad_norm, lrs


def _log_window(s: _State, grad_norm: float, lrs: dict) -> None:
    w = s.window
    ce, n_items, samples, tokens, data_s = s.rt.all_reduce([w.ce, w.items, w.samples, w.tokens, w.data_s])
    elapsed = time.perf_counter() - w.t0
    record = {"step": s.step, "epoch": s.epoch, "loss": ce / max(n_items, 1), "grad_norm": grad_norm,
              **{f"lr_{k}": v for k, v in lrs.items()}, "samples": int(samples), "tokens": int(tokens),
              "samples_per_s": samples / elapsed, "tokens_per_s": tokens / elapsed,
              "data_wait_share": data_s / s.rt.world / elapsed, "time": time.time()}  # fmt: skip
    s.metrics.write(record)
    s.window = _Window()


def _save(s: _State) -> None:
    t = s.cfg.train
    weights, optim_state = trainable_state(s.model, s.optimizer, s.fsdp)
    if s.rt.rank == 0:
        state = {"epoch": s.epoch, "micro": s.micro, "world_size": s.rt.world, "batch_size": t.batch_size,
                 "grad_accum": t.grad_accum, "total_steps": s.total}  # fmt: skip
        write_checkpoint(s.run, s.step, weights, optim_state, s.scheduler.state_dict(), state, s.run / STATS,
                         config_to_dict(s.cfg))  # fmt: skip
        prune_checkpoints(s.run, t.keep_checkpoints)
    s.rt.barrier()
    s.metrics.report()


def _quiet_ray_data() -> None:
    import ray.data  # here: Ray Data (Ray takes ~1 s to import); a Ray run only

    ray.data.DataContext.get_current().enable_progress_bars = False
