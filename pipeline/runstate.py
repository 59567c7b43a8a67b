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

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

__all__ = ["ANNOTATION_CACHE", "LOCK_FILE", "OutLocked", "RunState", "RunStateError", "atomic_write_bytes",
           "atomic_write_json", "contained_path", "lock_out", "path_problem"]  # fmt: skip

log = logging.getLogger(__name__)
STATE_DIR = ".movid"
LOCK_FILE = ".movid.lock"  # beside .movid/, not in it: removing a build's run state never removes the lock
ANNOTATION_CACHE = ".annotation_cache"  # paid-for answers: kept when a build is replaced
TABLE_DIRS = ("motion", "video", "instruction", "clip_stats", "quarantine", "bench")
# folders movid writes into during a build: a symlink at one of these names would lead its writes outside OUT
BUILD_DIRS = (*TABLE_DIRS, "validation", STATE_DIR)
OWNED_TREES = ("validation/data_docs",)  # the only folders removed whole (great-expectations' Data Docs site)


class RunStateError(RuntimeError):
    """A problem with ``OUT`` that the user can fix (the CLI shows it as one line, exit 2)."""


class OutLocked(RunStateError):
    """Another movid run holds ``OUT``."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary name beside ``path``, fsync, then rename: readers see all or nothing. (The
    rename replaces a symlink at ``path`` itself, never the file it points to.)"""
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


# --- paths a manifest or a journal names -----------------------------------------------------------------
def _syntax_problem(rel) -> str | None:
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        return "outside OUT: not a relative path"
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        return "outside OUT: an absolute path or one with '..'"
    if not pure.parts:
        return "not a path below OUT"
    return None


def path_problem(out: str | Path, rel) -> str | None:
    """Why ``OUT/rel`` (a path read from a manifest or journal, so possibly edited by anyone) must not be
    opened, or None when it is a plain path inside ``OUT``: it must be relative, without ``..``, and no part
    of it below ``OUT`` may be a symlink (movid never writes one; a symlink can lead anywhere)."""
    if problem := _syntax_problem(rel):
        return problem
    here = Path(out)
    for part in PurePosixPath(rel).parts:
        here = here / part
        try:
            if here.is_symlink():
                target, root = os.path.realpath(here), os.path.realpath(out)
                inside = target == root or target.startswith(root.rstrip(os.sep) + os.sep)
                return "symlink" + ("" if inside else " leading outside OUT")
        except OSError:  # (a name too long, a component that is a file): not something movid wrote
            return "not a plain path"
    return None


def contained_path(out: str | Path, rel) -> Path:
    """``OUT/rel``, or :class:`RunStateError` when :func:`path_problem` has an objection."""
    problem = path_problem(out, rel)
    if problem:
        raise RunStateError(f"{out}: the manifest names the path {rel!r}, which movid will not open ({problem}); "
                            "run `movid validate` on it")  # fmt: skip
    return Path(out) / rel


# --- one writer per OUT ----------------------------------------------------------------------------------
def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file (read through our own descriptor: on NFS,
    where the lock is a POSIX lock, closing another descriptor of the file would drop a lock we held)."""
    for _ in range(20):  # the holder writes its details right after taking the lock: give it a moment
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict):
            return (f"{info.get('command', 'movid')} (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
                    f"started {info.get('started_at', '?')})")  # fmt: skip
        time.sleep(0.05)
    return "(pid and host unknown: the lock file holds no details)"


class _OutLock:
    """An exclusive ``fcntl.flock`` on ``OUT/.movid.lock``: the kernel drops it when the process ends, however
    it ends (SIGKILL included), so there are no stale locks to clean up."""

    def __init__(self, out: Path, command: str):
        self.out, self.command = out, command
        self.path = out / LOCK_FILE
        self.fd: int | None = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RunStateError(f"{self.path} is a symlink; movid does not follow it — remove it") from None
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise RunStateError(f"{self.out} is not writable ({exc.strerror}); movid needs to write in OUT") from None
            if exc.errno == errno.EISDIR:
                raise RunStateError(f"{self.path} is a folder; movid keeps its lock file there — remove it") from None
            raise

    def acquire(self, wait: bool) -> None:
        said = False
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    holder = _holder(fd)
                    os.close(fd)
                    raise OutLocked(f"{self.out} is in use by another movid run: {holder}; let it finish, or "
                                    "rerun with --wait to wait for it") from None  # fmt: skip
                if not said:
                    log.info("waiting for %s to finish with %s", _holder(fd), self.out)
                    said = True
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise RunStateError(
                        f"{self.out}: this file system gives no locks ({exc.strerror}), so movid cannot keep two runs "
                        "apart; see docs/cluster.md (NFS: mount without nolock/local_lock; Lustre: -o flock)"
                    ) from None
                raise
            # the file we locked must still be the one at the path (someone may have deleted it meanwhile)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        info = {"command": self.command, "pid": os.getpid(), "host": socket.gethostname(),
                "started_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
        data = (json.dumps(info) + "\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)  # so that a refused run on another NFS client can read who holds OUT
        except OSError as exc:  # (a full disk): the lock holds all the same; only the details are missing
            log.warning("could not write this run's details into %s: %s", self.path, exc.strerror)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # the details would be stale; the next holder writes its own
        except OSError:
            pass
        os.close(self.fd)  # drops the lock
        self.fd = None


def _is_build(out: Path) -> bool:
    return (out / "manifest.json").is_file() or (out / STATE_DIR / "run.json").is_file()


@contextmanager
def lock_out(out: str | Path, command: str, *, wait: bool = False, create: bool = False) -> Iterator[Path]:
    """Hold ``OUT`` for writing for the duration of the ``with`` block: one movid run at a time per ``OUT``.

    Refuses with :class:`OutLocked` (naming the holder's command, pid, host and start time) when another
    run holds it, or waits for it with ``wait``. ``create``: ``OUT`` may be new (``movid build``): it is
    created, but a folder that holds other things and no movid build is refused before the lock file is put
    in it. Without ``create``, ``OUT`` must hold a movid build. Only the driver takes the lock; workers write
    their units under it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunStateError(f"{out} is not a folder (a file is in the way)")
    if create:
        if out.is_dir() and not (out / STATE_DIR).exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise RunStateError(f"{out} is not empty and holds no movid build; choose a new --out")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunStateError(f"cannot create {out}: {exc.strerror}") from None
    elif not _is_build(out):
        what = "does not exist" if not out.exists() else "holds no movid build (no manifest.json)"
        raise RunStateError(f"{out} {what}")
    lock = _OutLock(out, command)
    lock.acquire(wait)
    try:
        yield out
    finally:
        lock.release()


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
        return self.out / "manifest.json"

    @property
    def clear_file(self) -> Path:
        return self.dir / "clear.json"

    def _entries(self) -> list[Path]:
        return [p for p in self.out.iterdir() if p.name != LOCK_FILE] if self.out.is_dir() else []

    def prepare(self, identity: dict, overwrite: bool = False) -> bool:
        """Claim ``OUT`` for the build described by ``identity`` (config and plan hashes). Returns True
        when ``OUT`` already holds this build (a resume), False for a fresh start. The caller holds the lock."""
        if self.out.exists() and not self.out.is_dir():
            raise RunStateError(f"{self.out} is not a folder (a file is in the way)")
        if self.clear_file.is_file():  # an --overwrite cut off while it removed the old build: finish that first
            self.clear()
            atomic_write_json(self.run_file, identity)
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
                    changed = _changed_keys(previous, identity)
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
        owned = ["manifest.json"]
        if manifest is not None or moves is not None:
            owned.append("README.md")  # the dataset card, written by the commit right before the manifest
        shards = manifest.get("shards", []) if isinstance(manifest, dict) else []
        listed = [s.get("path") for s in shards if isinstance(s, dict)]
        listed += [m.get("dst") for m in moves or [] if isinstance(m, dict)] if isinstance(moves, list) else []
        owned += [p for p in listed if _is_shard_path(p)]  # (a manifest may have been edited: nothing else)
        owned += ["validation/report.json", *OWNED_TREES]
        splits = {s.get("split") for s in shards if isinstance(s, dict) and s.get("table") == "instruction"}
        from model.export import FORMATS

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
        if problem := _syntax_problem(rel):
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
    return (isinstance(rel, str) and _syntax_problem(rel) is None and rel.endswith(".parquet")
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
