"""A rate limit shared by every worker of a build: a named Ray actor that hands out start times.

Each request asks the actor for a slot (``acquire(tokens)``) and sleeps until it; the actor spaces starts
by 60 / requests_per_minute seconds and by tokens × 60 / tokens_per_minute, cluster-wide. Without Ray
(the local executor) the same arithmetic runs in-process (``stages.llm_runtime.LocalLimiter``).
"""

from __future__ import annotations

import asyncio

from stages.llm_runtime import LocalLimiter, Schedule

__all__ = ["LocalLimiter", "SharedLimiter", "actor_name", "make_limiter", "start_shared_limiter"]

NAMESPACE = "movid"


class SharedLimiter:
    """The client side of the actor."""

    def __init__(self, actor):
        self.actor = actor

    async def wait(self, tokens: int = 0) -> None:
        delay = await self.actor.reserve.remote(tokens)
        if delay > 0:
            await asyncio.sleep(delay)


def actor_name(config_hash: str) -> str:
    return f"movid-rate-limit-{config_hash}"


def start_shared_limiter(ray, name: str, requests_per_minute, tokens_per_minute):
    """Create (or find) the build's limiter actor; call on the driver before submitting units."""
    actor_cls = ray.remote(num_cpus=0)(Schedule)
    return actor_cls.options(name=name, namespace=NAMESPACE, get_if_exists=True, lifetime=None).remote(
        requests_per_minute, tokens_per_minute)  # fmt: skip


def make_limiter(name: str, requests_per_minute, tokens_per_minute):
    """Inside a Ray worker: the build's shared limiter if the driver started one; else a local one."""
    if not (requests_per_minute or tokens_per_minute):
        return LocalLimiter()
    try:
        import ray

        if ray.is_initialized():
            return SharedLimiter(ray.get_actor(name, namespace=NAMESPACE))
    except (ImportError, ValueError):  # ValueError: no such actor (the local executor)
        pass
    return LocalLimiter(requests_per_minute, tokens_per_minute)
