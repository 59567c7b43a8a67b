"""Orchestration — the data side: config, planner, executors (Ray and local), run state, commit, manifest,
validation and report, and the data side's commands (``pipeline.cli``). Stages stay in ``stages/``; this
package decides where and when they run and where their output goes.

What the consumer side (``model/``: training, bench answering, scoring, export) may use of it is what this
module exports; its submodules are private to the data side (an import-linter contract in pyproject.toml)."""

from pipeline.config import AnnotatorConfig, ConfigError
from pipeline.config import _from_dict as config_from_dict
from pipeline.config import _set_dotted as set_dotted
from pipeline.raystart import start_ray
from pipeline.runstate import RunStateError, atomic_write_bytes, contained_path, lock_out, path_problem

__all__ = ["AnnotatorConfig", "ConfigError", "RunStateError", "atomic_write_bytes", "config_from_dict",
           "contained_path", "lock_out", "path_problem", "set_dotted", "start_ray"]  # fmt: skip
