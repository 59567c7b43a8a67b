"""Fault injection for tests: an explicit plan the caller passes to ``build(..., faults=)``, which the
executor ships to every unit with the unit function (never module globals or environment reads in library
code). Faults stand in for what the tests cannot cause on demand: a native decoder crashing on a record, a
disk filling up mid-write, a unit slow enough for a kill or a second process to land in it.

Only the CLI entry point reads the ``MOVID_FAULT_*`` variables (``FaultPlan.from_env``), so the
subprocess tests can inject faults into a real ``movid build``."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV_PREFIX", "FaultPlan"]

log = logging.getLogger(__name__)
ENV_PREFIX = "MOVID_FAULT_"


@dataclass(frozen=True)
class FaultPlan:
    """``unit_delay_s``: each unit sleeps this long before its work. ``segfault_records``: a unit holding one
    of these records kills its process with a real SIGSEGV. ``enospc_unit``: a unit whose id contains this
    text has its first shard write fail with ENOSPC after part of the file is on disk."""

    unit_delay_s: float = 0.0
    segfault_records: frozenset[str] = frozenset()
    enospc_unit: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FaultPlan | None:
        """The plan the ``MOVID_FAULT_UNIT_DELAY_S``, ``MOVID_FAULT_SEGFAULT_RECORD`` (ids, comma-separated)
        and ``MOVID_FAULT_ENOSPC_UNIT`` variables of ``env`` describe; None when none is set."""
        plan = cls(float(env.get(f"{ENV_PREFIX}UNIT_DELAY_S", "0") or 0),
                   frozenset(r for r in env.get(f"{ENV_PREFIX}SEGFAULT_RECORD", "").split(",") if r),
                   env.get(f"{ENV_PREFIX}ENOSPC_UNIT", ""))  # fmt: skip
        return plan if plan != cls() else None

    def before_unit(self, unit_id: str, record_ids) -> None:
        """The delay and the crash, at the start of a unit's work."""
        if self.unit_delay_s:
            time.sleep(self.unit_delay_s)
        if self.segfault_records.intersection(record_ids):
            import ctypes  # (only a crashing unit needs it)

            log.warning("fault injection: unit %s crashes with SIGSEGV", unit_id)
            ctypes.string_at(0)  # reads address 0: the kernel sends SIGSEGV

    def shard_writer(self, unit_id: str, write: Callable) -> Callable:
        """``write`` (``write_table_shards``), or for the ENOSPC unit a writer that puts the beginning of a shard
        on disk and then fails as a full disk does."""
        if not self.enospc_unit or self.enospc_unit not in unit_id:
            return write

        def write_or_fail(table, table_name, folder, **kw):
            path = Path(folder) / "00000.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(b"PAR1" + bytes(4096))  # what fitted before the disk filled up
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        return write_or_fail
