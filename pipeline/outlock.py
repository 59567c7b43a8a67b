"""One writer per build folder: ``lock_out`` holds ``OUT/.movid.lock`` (an ``fcntl`` lock on a file that is never
deleted) for a command's duration, and refuses — or waits — when another movid run holds it, naming the
holder."""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.outfiles import LOCK_FILE, STATE_DIR, OutLocked, RunStateError
from schemas.manifest import has_manifest

__all__ = ["lock_out"]

log = logging.getLogger(__name__)



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
    return has_manifest(out) or (out / STATE_DIR / "run.json").is_file()


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
