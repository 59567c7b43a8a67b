"""Orchestration — the data side: config, planner, executors (Ray and local), run state, commit, manifest,
validation and report, and the data side's commands (``pipeline.cli``). Stages stay in ``stages/``; this
package decides where and when they run and where their output goes.

What the consumer side (``model/``: training, bench answering, scoring, export) may use of it is what this
module exports; its submodules are private to the data side (an import-linter contract in pyproject.toml)."""

from pipeline.config import AnnotatorConfig, ConfigError
from pipeline.raystart import start_ray
from pipeline.runstate import RunStateError, atomic_write_bytes, contained_path, lock_out, path_problem
from stages.threads import allot_threads, thread_settings, usable_cpus

__all__ = ["AnnotatorConfig", "ConfigError", "RunStateError", "allot_threads", "atomic_write_bytes", "contained_path",
           "lock_out", "path_problem", "start_ray", "thread_settings", "usable_cpus"]  # fmt: skip
