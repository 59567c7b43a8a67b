"""Run state of a build folder: the one-writer lock, atomic writes, per-unit staging with completion markers,
the guard that keeps a rerun from mixing two different builds in one ``OUT``, and the removal of a build
that touches only what movid wrote.

Layout: ``OUT/.movid.lock`` (the lock file: never deleted, not even by ``--overwrite``), and under
``OUT/.movid/``: ``run.json`` (what is being built), ``units/<unit_id>/`` (a finished unit: its
``stats.json`` plus staged shards until commit), ``units/.tmp-*`` (work in progress, never read),
``commit.json`` (the staged → final renames), ``clear.json`` (what an ``--overwrite`` is removing, so that
a removal cut off halfway finishes on rerun).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath

from pipeline.outfiles import (
    ANNOTATION_CACHE,
    BUILD_DIRS,
    LOCK_FILE,
    OWNED_TREES,
    STATE_DIR,
    TABLE_DIRS,
    OutLocked,
    RunStateError,
    atomic_write_bytes,
    atomic_write_json,
    contained_path,
    path_problem,
    syntax_problem,
)
from pipeline.outlock import lock_out
from schemas.manifest import MANIFEST_FILE, manifest_path

# (the layout, errors, atomic writes and the lock are re-exported: many modules import them from here)
__all__ = ["ANNOTATION_CACHE", "BUILD_DIRS", "LOCK_FILE", "OWNED_TREES", "OutLocked", "RunState", "RunStateError",
           "STATE_DIR", "TABLE_DIRS", "atomic_write_bytes", "atomic_write_json", "contained_path", "lock_out",
           "path_problem"]  # fmt: skip

log = logging.getLogger(__name__)



# --- the build this folder holds ----------------------------------------------------------------------
def _changed_keys(previous, identity: dict) -> list[str]:
    """The identity's keys whose values differ (``annotation_inputs.qa.prompt`` for a nested one)."""
    if not isinstance(previous, dict):
        return sorted(identity)
    changed = []
    for k, v in identity.items():
        old = previous.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            changed += [f"{k}.{sub}" for sub in sorted(set(v) | set(old)) if v.get(sub) != old.get(sub)]
        elif old != v:
            changed.append(k)
    return sorted(changed)


class RunState:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.dir = self.out / STATE_DIR
        self.units_dir = self.dir / "units"

    @property
    def run_file(self) -> Path:
        return self.dir / "run.json"

    @property
    def manifest_file(self) -> Path:
        return manifest_path(self.out)

    @property
    def clear_file(self) -> Path:
        return self.dir / "clear.json"

    def _entries(self) -> list[Path]:
        return [p for p in self.out.iterdir() if p.name != LOCK_FILE] if self.out.is_dir() else []

    @property
    def config_file(self) -> Path:
        return self.dir / "config.json"  # the values the config hash covers, to name what changed

    def _changed(self, previous, identity: dict, config: dict | None) -> list[str]:
        changed = _changed_keys(previous, identity)
        if "config_hash" in changed and config is not None and self.config_file.is_file():
            from pipeline.config_identity import changed_config_keys

            try:
                keys = changed_config_keys(json.loads(self.config_file.read_text()), config)
            except (OSError, ValueError):
                keys = []
            if keys:
                changed[changed.index("config_hash")] = f"config_hash: {'; '.join(keys[:6])}" + (
                    f"; … {len(keys) - 6} more" if len(keys) > 6 else "")  # fmt: skip
        return changed

    def prepare(self, identity: dict, overwrite: bool = False, config: dict | None = None) -> bool:
        """Claim ``OUT`` for the build described by ``identity`` (config and plan hashes). Returns True
        when ``OUT`` already holds this build (a resume), False for a fresh start. The caller holds the lock.
        ``config``: the values the config hash covers, kept in ``.movid/config.json`` so that a later build
        with another config is told which keys changed."""
        if self.out.exists() and not self.out.is_dir():
            raise RunStateError(f"{self.out} is not a folder (a file is in the way)")
        if self.clear_file.is_file():  # an --overwrite cut off while it removed the old build: finish that first
            self.clear()
            self._record(identity, config)
            return False
        if self._entries() and not self.run_file.is_file() and self._aborted_start():
            shutil.rmtree(self.dir)  # a start killed before it recorded its build: nothing else was written
        if self._entries():
            if not self.run_file.is_file():
                raise RunStateError(f"{self.out} is not empty and holds no movid build; choose a new --out")
            try:
                previous = json.loads(self.run_file.read_text())
            except (OSError, ValueError) as exc:
                raise RunStateError(f"{self.run_file} is unreadable ({exc}); choose a new --out") from None
            if previous != identity:
                if not overwrite:
                    changed = self._changed(previous, identity, config)
                    raise RunStateError(
                        f"{self.out} holds a different build ({', '.join(changed)} changed); rerun with "
                        "--overwrite to replace it, or choose a new --out"
                    )
                self.clear()
            else:
                if config is not None and not self.config_file.is_file():  # (a build begun by an older movid)
                    atomic_write_json(self.config_file, config)
                return True
        self.out.mkdir(parents=True, exist_ok=True)
        self._record(identity, config)
        return False

    def _record(self, identity: dict, config: dict | None) -> None:
        atomic_write_json(self.run_file, identity)
        if config is not None:
            atomic_write_json(self.config_file, config)

    def _aborted_start(self) -> bool:
        """``OUT`` holds only ``.movid/`` with at most the temporary file of a run.json never renamed."""
        return [p.name for p in self._entries()] == [STATE_DIR] and self.dir.is_dir() and all(
            p.name.startswith(".run.json.tmp-") for p in self.dir.iterdir())  # fmt: skip

    # --- removing a build: only what movid wrote ------------------------------------------------------
    def owned_paths(self) -> list[str]:
        """What the build in ``OUT`` consists of, relative to ``OUT``: the manifest first (without it the
        build is no longer complete), the card, every shard the manifest and the commit journal list, the
        validation report and Data Docs, exports and a report movid wrote there. Not the run state (handled
        apart), not the annotation cache, not the lock file, and nothing else a user put in ``OUT``."""
        manifest = _read_json(self.manifest_file)
        moves = _read_json(self.dir / "commit.json")
        owned = [MANIFEST_FILE]
        if manifest is not None or moves is not None:
            owned.append("README.md")  # the dataset card, written by the commit right before the manifest
        shards = manifest.get("shards", []) if isinstance(manifest, dict) else []
        listed = [s.get("path") for s in shards if isinstance(s, dict)]
        listed += [m.get("dst") for m in moves or [] if isinstance(m, dict)] if isinstance(moves, list) else []
        owned += [p for p in listed if _is_shard_path(p)]  # (a manifest may have been edited: nothing else)
        owned += ["validation/report.json", *OWNED_TREES]
        splits = {s.get("split") for s in shards if isinstance(s, dict) and s.get("table") == "instruction"}
        from schemas.instruction import EXPORT_FORMATS as FORMATS

        # `movid export` writes OUT/export/<format>/<split>.json by default
        owned += [f"export/{fmt}/{split}.json" for fmt in FORMATS for split in sorted(map(str, splits))]
        from pipeline.report import REPORT_DIR, report_files  # `movid report`'s default destination

        owned += [f"{REPORT_DIR}/{p}" for p in report_files(self.out / REPORT_DIR)]
        return list(dict.fromkeys(p for p in owned if isinstance(p, str)))

    def clear(self) -> None:
        """Remove the movid build in ``OUT`` — only what movid wrote (:meth:`owned_paths`, the run state
        but ``run.json``, then the folders that are left empty) — without following any symlink. What to
        remove is written down first (``.movid/clear.json``), so a removal cut off halfway finishes on rerun."""
        if not self.run_file.is_file():
            raise RunStateError(f"refusing to clear {self.out}: it holds no movid build")
        owned = _read_json(self.clear_file)
        if not isinstance(owned, list):
            owned = self.owned_paths()
            atomic_write_json(self.clear_file, owned)
        for rel in owned:
            self._remove(rel)
        for name in BUILD_DIRS:
            if (self.out / name).is_symlink():  # a build writes into these: a link would lead it outside OUT
                log.warning("removing the symlink %s (not following it)", self.out / name)
                (self.out / name).unlink()
        for child in self.dir.iterdir() if self.dir.is_dir() else ():
            if child.name not in ("run.json", "clear.json"):
                _remove_entry(child)
        for name in (*TABLE_DIRS, "validation", "export", "report"):
            _prune_empty(self.out / name)
        self.clear_file.unlink(missing_ok=True)

    def _remove(self, rel) -> None:
        """Remove ``OUT/rel`` if it is there; a symlink is unlinked as a link, and nothing is removed through
        a symlinked folder or outside ``OUT``."""
        if problem := syntax_problem(rel):
            log.warning("not removing %r: %s", rel, problem)
            return
        parent = str(PurePosixPath(rel).parent)
        if parent != "." and (problem := path_problem(self.out, parent)):
            log.warning("not removing %r: its folder is a %s", rel, problem)
            return
        path = self.out / rel
        if path.is_dir() and not path.is_symlink() and rel not in OWNED_TREES:
            log.warning("not removing %r: a folder where movid wrote a file", rel)
            return
        if path.is_symlink() or path.exists():
            _remove_entry(path)

    # --- work units ----------------------------------------------------------------------------
    def is_complete(self) -> bool:
        return self.manifest_file.is_file()

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


def _is_shard_path(rel) -> bool:
    """A shard's path as movid writes it: ``<table>/[<split>/]part-NNNNN.parquet`` below a table folder."""
    return (isinstance(rel, str) and syntax_problem(rel) is None and rel.endswith(".parquet")
            and len(PurePosixPath(rel).parts) in (2, 3) and PurePosixPath(rel).parts[0] in TABLE_DIRS)  # fmt: skip


def _read_json(path: Path):
    try:
        return json.loads(path.read_text()) if path.is_file() and not path.is_symlink() else None
    except (OSError, ValueError):
        return None


def _remove_entry(path: Path) -> None:
    """Remove a file, a symlink (as a link) or a folder tree (``shutil.rmtree`` unlinks the symlinks it
    meets and never descends into them)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def _prune_empty(folder: Path) -> None:
    """Remove ``folder`` and the folders under it that are left empty (bottom-up, not following symlinks)."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for dirpath, _dirs, _files in os.walk(folder, topdown=False, followlinks=False):
        try:
            os.rmdir(dirpath)
        except OSError:  # not empty: a user's file is in it
            pass
