"""Checkpoints of a run: ``RUN/checkpoints/step-NNNNNNNN/`` holds the trainable weights (safetensors), the
optimizer and scheduler states, the data position and the motion Mean/Std, with the run's config beside them.
Written to a temporary folder and renamed, so a checkpoint that exists is complete."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
import yaml

__all__ = [
    "CHECKPOINTS",
    "checkpoint_dir",
    "latest_checkpoint",
    "list_checkpoints",
    "load_trainable",
    "prune_checkpoints",
    "read_state",
    "resolve_checkpoint",
    "write_checkpoint",
]

CHECKPOINTS = "checkpoints"
WEIGHTS, OPTIMIZER, SCHEDULER, STATE, STATS, CONFIG = ("model.safetensors", "optimizer.pt", "scheduler.pt",
                                                      "state.json", "motion_stats.npz", "config.yaml")  # fmt: skip


def checkpoint_dir(run: str | Path, step: int) -> Path:
    return Path(run) / CHECKPOINTS / f"step-{step:08d}"


def list_checkpoints(run: str | Path) -> list[Path]:
    root = Path(run) / CHECKPOINTS
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / STATE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(run: str | Path) -> Path | None:
    found = list_checkpoints(run)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder's latest checkpoint."""
    path = Path(path)
    if (path / STATE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path}: neither a checkpoint nor a run with checkpoints ({CHECKPOINTS}/step-*)")
    return latest


def write_checkpoint(run: str | Path, step: int, weights: dict[str, torch.Tensor], optimizer: dict, scheduler: dict,
                     state: dict, stats_path: Path, config: dict) -> Path:  # fmt: skip
    from safetensors.torch import save_file

    final = checkpoint_dir(run, step)
    tmp = final.with_name(f".tmp-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / WEIGHTS)
    torch.save(optimizer, tmp / OPTIMIZER)
    torch.save(scheduler, tmp / SCHEDULER)
    shutil.copyfile(stats_path, tmp / STATS)
    (tmp / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp / STATE).write_text(json.dumps({**state, "step": step, "saved_at": time.time()}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def prune_checkpoints(run: str | Path, keep: int) -> None:
    for old in list_checkpoints(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_state(ckpt: Path) -> dict:
    return json.loads((ckpt / STATE).read_text())


def load_trainable(model: torch.nn.Module, ckpt: Path, *, require_all: bool) -> list[str]:
    """Load a checkpoint's weights into the (unwrapped) model; names of trainable parameters it did not hold.
    A weight the model lacks is an error; so is a missing trainable one when ``require_all`` (a resume)."""
    from safetensors.torch import load_file

    state = load_file(ckpt / WEIGHTS)
    params = dict(model.named_parameters())
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise ValueError(f"{ckpt}: weights the model does not have (a different config?): {unknown[:5]}")
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    if missing and require_all:
        raise ValueError(f"{ckpt}: no weights for trainable {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            if params[name].shape != value.shape:
                raise ValueError(f"{ckpt}: {name} has shape {tuple(value.shape)}, the model {tuple(params[name].shape)}")
            params[name].copy_(value)
    return missing
