"""Run state of a build folder: atomic writes, per-unit staging with completion markers, and the guard
that keeps a rerun from mixing two different builds in one ``OUT``.

Layout under ``OUT/.movid/``: ``run.json`` (what is being built), ``units/<unit_id>/`` (a finished
unit: its ``stats.json`` plus staged shards until commit), ``units/.tmp-*`` (work in progress, never
read), ``commit.json`` (the staged → final renames).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

__all__ = ["ANNOTATION_CACHE", "RunState", "RunStateError", "atomic_write_bytes", "atomic_write_json"]

STATE_DIR = ".movid"
ANNOTATION_CACHE = ".annotation_cache"  # paid-for answers: kept when a build is replaced


class RunStateError(RuntimeError):
    pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary name beside ``path``, fsync, then rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


class RunState:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.dir = self.out / STATE_DIR
        self.units_dir = self.dir / "units"

    # --- the build this folder holds ------------------------------------------------------------
    @property
    def run_file(self) -> Path:
        return self.dir / "run.json"

    @property
    def manifest_file(self) -> Path:
        return self.out / "manifest.json"

    def prepare(self, identity: dict, overwrite: bool = False) -> bool:
        """Claim ``OUT`` for the build described by ``identity`` (config and plan hashes). Returns True
        when ``OUT`` already holds this build (a resume), False for a fresh start."""
        if self.out.exists() and any(self.out.iterdir()) and not self.run_file.is_file() and self._aborted_start():
            shutil.rmtree(self.dir)  # a start killed before it recorded its build: nothing else was written
        if self.out.exists() and any(self.out.iterdir()):
            if not self.run_file.is_file():
                raise RunStateError(f"{self.out} is not empty and holds no movid build; choose a new --out")
            previous = json.loads(self.run_file.read_text())
            if previous != identity:
                if not overwrite:
                    changed = sorted(k for k in identity if previous.get(k) != identity[k])
                    raise RunStateError(
                        f"{self.out} holds a different build ({', '.join(changed)} changed); rerun with "
                        "--overwrite to replace it, or choose a new --out"
                    )
                self.clear()
            else:
                return True
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_file, identity)
        return False

    def _aborted_start(self) -> bool:
        """``OUT`` holds only ``.movid/`` with at most the temporary file of a run.json never renamed."""
        return [p.name for p in self.out.iterdir()] == [STATE_DIR] and all(
            p.name.startswith(".run.json.tmp-") for p in self.dir.iterdir())  # fmt: skip

    def clear(self) -> None:
        """Remove a movid build (only what movid writes) from ``OUT``."""
        if not self.run_file.is_file():
            raise RunStateError(f"refusing to clear {self.out}: it holds no movid build")
        for child in self.out.iterdir():
            if child.name == ANNOTATION_CACHE:
                continue
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()

    def is_complete(self) -> bool:
        return self.manifest_file.is_file()

    # --- work units ----------------------------------------------------------------------------
    def unit_dir(self, unit_id: str) -> Path:
        return self.units_dir / unit_id

    def stats_file(self, unit_id: str) -> Path:
        return self.unit_dir(unit_id) / "stats.json"

    def is_done(self, unit_id: str) -> bool:
        return self.stats_file(unit_id).is_file()

    def read_stats(self, unit_id: str) -> dict:
        return json.loads(self.stats_file(unit_id).read_text())

    def new_tmp_unit_dir(self, unit_id: str) -> Path:
        tmp = self.units_dir / f".tmp-{unit_id}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        return tmp

    def finish_unit(self, tmp: Path, unit_id: str) -> None:
        """Publish a unit's staging folder (its stats.json written last) with one rename. If another
        attempt of the same unit won the race, its output is identical (deterministic) and ours goes."""
        try:
            os.rename(tmp, self.unit_dir(unit_id))
        except OSError:
            if not self.is_done(unit_id):
                raise
            shutil.rmtree(tmp, ignore_errors=True)

    def remove_stale_tmp(self) -> None:
        """Staging folders of attempts that died; safe only while no worker of this build runs."""
        if self.units_dir.is_dir():
            for p in self.units_dir.glob(".tmp-*"):
                shutil.rmtree(p, ignore_errors=True)
