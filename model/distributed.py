"""Where a training process runs and what spans processes: :class:`Runtime` (rank, world, device; Ray Train's
or torchrun's process group), DDP / FSDP2 wrapping, the trainable state gathered whole for a checkpoint, and
the CPU threads of a process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from model.config import TrainConfig
from model.motionllm import clean_name
from pipeline import allot_threads, usable_cpus

__all__ = ["Runtime", "load_optimizer", "set_cpu_threads", "trainable_state", "unwrap", "wrap"]


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
        if kind == "ray":  # here: only a Ray Train worker gets here (Ray takes ~1 s to import)
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


def wrap(model, cfg: TrainConfig, rt: Runtime):
    if cfg.train.strategy == "fsdp" and rt.world > 1:
        # FSDP2: each decoder layer, the motion encoder and the vision tower are shard groups, the rest the root's.
        # (Imported here: FSDP's modules are only needed by a multi-process FSDP run.)
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
        return DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return model


def unwrap(model):
    return model.module if hasattr(model, "module") else model


def set_cpu_threads(threads: int, local_workers: int = 1) -> int:
    """Intra-op threads of this CPU process, torch's and the BLAS/OpenMP pools' (``pipeline.allot_threads``):
    ``threads``, or with 0 the cores this process may use shared among the node's ``local_workers`` processes.
    Processes that each use every core (torch's default) thrash a small machine."""
    return allot_threads(threads or max(1, usable_cpus() // max(1, local_workers)))


def trainable_state(model, optimizer, fsdp: bool) -> tuple[dict, dict]:
    """(trainable weights by bare name, optimizer state), gathered whole on every rank's CPU for FSDP."""
    if fsdp:  # (torch.distributed.checkpoint: imported by FSDP runs only)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        names = {clean_name(n) for n, p in model.named_parameters() if p.requires_grad}
        weights, optim = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: v for k, v in weights.items() if clean_name(k) in names}, optim
    bare = unwrap(model)
    return {n: p for n, p in bare.named_parameters() if p.requires_grad}, optimizer.state_dict()


def load_optimizer(model, optimizer, state: dict, fsdp: bool) -> None:
    if fsdp:  # (torch.distributed.checkpoint: imported by FSDP runs only)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state)
