"""Launching a training run: the run folder (``prepare_run``), then the loop (``model/loop.py``) in this
process (``train(..., executor="local")``), on Ray Train (``train``: TorchTrainer, DDP by default, FSDP as an
option; gloo on CPU, nccl on GPU) or under torchrun (``torchrun --nproc-per-node N -m model.train …``: ``main``).

A run folder holds ``config.yaml``, ``motion_stats.npz`` (Mean/Std of the train split), ``metrics.jsonl`` (one
line per logged step), ``tensorboard/`` and ``checkpoints/step-NNNNNNNN/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch.distributed as dist
import yaml

from model import ENVIRONMENT
from model.checkpoint import CONFIG, STATS, latest_checkpoint, read_state, resolve_checkpoint
from model.config import ConfigError, TrainConfig, config_to_dict, load_train_config, train_config_from_dict
from model.data import MotionStats, check_build, local_motion_stats, ray_datasets, ray_motion_stats
from model.distributed import Runtime, set_cpu_threads
from model.loop import train_loop
from model.motionllm import check_weights
from model.train_log import METRICS, progress, quiet_libraries, read_metrics
from pipeline import start_ray

__all__ = ["RunExists", "Runtime", "main", "prepare_run", "read_metrics", "set_cpu_threads", "train", "train_loop"]

log = logging.getLogger("model.train")  # also under ``python -m model.train``
# Settings a resumed run may change: where and how it runs, how long, how often it logs and saves.
RESUMABLE_CHANGES = {"lm.path", "lm.gguf_file", "lm.tokenizer", "video.tower", "motion.vqvae_checkpoint", "train.init_from",
                     "train.cpu_threads", "train.stop_at_step", "train.max_steps", "train.epochs", "train.log_every", "train.save_every",
                     "train.keep_checkpoints", "train.workers", "train.use_gpu", "train.tensorboard", "train.max_failures",
                     "train.ray_address", "train.ray_num_cpus", "train.ray_object_store_memory",
                     "data.loader_threads", "data.prefetch_batches"}  # fmt: skip



class RunExists(ConfigError):
    pass


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


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


def train(cfg: TrainConfig, data: str | Path, run: str | Path, *, executor: str = "ray", workers: int | None = None,
          resume: bool = False, show_progress: bool = True) -> dict:  # fmt: skip
    """Train ``cfg`` on the build ``data`` into the run folder ``run``; the last logged metrics."""
    quiet_libraries()
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
        with progress(run, start, cfg.train.stop_at_step or cfg.train.max_steps or 0, show_progress):
            train_loop({"cfg": config_to_dict(cfg), "run": str(run), "data": str(data), "executor": "local"})
        return (read_metrics(run) or [{}])[-1]
    return _train_on_ray(cfg, data, run, resume, show_progress)


def _train_on_ray(cfg: TrainConfig, data: Path, run: Path, resume: bool, show_progress: bool) -> dict:
    """Ray Train's TorchTrainer, ``train.workers`` workers, on a private Ray or the cluster at
    ``train.ray_address`` (movid's code shipped by ``pipeline.start_ray``)."""
    # here: Ray Train and Ray Data take seconds to import, and a local run never needs them
    import ray
    import ray.data
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    # a joined cluster's workers get the consumer side's environment (a private Ray's inherit this process's)
    started = start_ray(cfg.train.ray_address, num_cpus=cfg.train.ray_num_cpus,
                        object_store_memory=cfg.train.ray_object_store_memory, cluster_env=ENVIRONMENT)  # fmt: skip
    ray.data.DataContext.get_current().enable_progress_bars = False
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
        with progress(run, start, cfg.train.stop_at_step or cfg.train.max_steps or 0, show_progress):
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
    for name, value in ENVIRONMENT.items():  # an entry point: the consumer side's library environment
        os.environ.setdefault(name, value)
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
    with progress(run, start, cfg.train.stop_at_step or cfg.train.max_steps or 0, rt.rank == 0):
        train_loop({"cfg": config_to_dict(cfg), "run": str(run), "data": str(data), "executor": kind})
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
