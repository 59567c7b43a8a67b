"""Starting Ray, for a build (``pipeline/executors.py``) and for training (``model/train.py``) alike: a private
local instance, or a cluster joined by address (``auto``, ``host:port``, or Ray Client's ``ray://host:10001``)
with movid's code shipped to it.

The code goes as directory paths in ``runtime_env["py_modules"]``: Ray zips and uploads each folder once per
content hash. Module objects work with a directly connected driver only; Ray Client pickles the runtime env
to send it to its server, and a module object cannot be pickled. Both callers ship the same packages, so a
worker can import whatever a task or a training loop it receives refers to."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CODE_PACKAGES", "code_paths", "start_ray"]

log = logging.getLogger(__name__)

# movid's packages that run on Ray workers (the top-level ``movid`` package is the command line only)
CODE_PACKAGES = ("schemas", "stages", "pipeline", "model", "configs")  # configs: the prompts and presets


def code_paths() -> list[str]:
    """The folders of :data:`CODE_PACKAGES` in this installation (found without importing them)."""
    paths = []
    for name in CODE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"movid's package {name!r} is not installed beside this one")
        paths.append(str(Path(next(iter(spec.submodule_search_locations))).resolve()))
    return paths


def start_ray(address: str | None, *, num_cpus: int | None = None, object_store_memory: int | None = None,
              env_vars: Mapping[str, str] | None = None, cluster_env: Mapping[str, str] | None = None) -> bool:
    """Connect this process to Ray; returns False when it already was (nothing is started then).

    ``address`` None: a private Ray that lives as long as this process — no dashboard; ``address="local"``
    starts a new instance even where another Ray already runs (plain ``ray.init()`` would join that one).
    Otherwise the cluster at ``address``, with movid's code shipped (:func:`code_paths`). ``env_vars``: set in
    every worker; ``cluster_env``: set in the workers of a joined cluster only (a private Ray's workers
    inherit this process's environment)."""
    import ray  # here: importing Ray takes ~1 s, and only the Ray executor and Ray Train need it

    if ray.is_initialized():
        return False
    env = dict(env_vars or {})
    if address:
        env |= dict(cluster_env or {})
        runtime_env = {"py_modules": code_paths()} | ({"env_vars": env} if env else {})
        log.debug("joining the Ray cluster at %s with movid's code from %s", address, runtime_env["py_modules"])
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory, include_dashboard=False,
                 log_to_driver=True, runtime_env={"env_vars": env} if env else None)  # fmt: skip
    return True
