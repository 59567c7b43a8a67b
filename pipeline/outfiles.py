"""The layout of a build folder (``OUT``) and the safe ways to write into it and read from it: the user-fixable
error every command shows as one line, atomic writes (temp file + rename + fsync), and the containment check
for a path read from a manifest or journal (which anyone may have edited)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path, PurePosixPath

__all__ = ["ANNOTATION_CACHE", "BUILD_DIRS", "LOCK_FILE", "OWNED_TREES", "OutLocked", "RunStateError", "STATE_DIR",
           "TABLE_DIRS", "atomic_write_bytes", "atomic_write_json", "contained_path", "path_problem",
           "syntax_problem"]  # fmt: skip

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
def syntax_problem(rel) -> str | None:
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
    if problem := syntax_problem(rel):
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
