"""Reading untrusted source files, for every ingest stage and the planner.

- **Containment.** ``SourceRoot.resolve`` turns a path named by a source (an id, a metadata ``path``, an
  ``index.csv`` row) into its real path — ``..`` and symlinks resolved — and refuses one that lands outside
  the source's root (``path_outside_root``) unless it lies under a folder the user allowed
  (``ingest.allowed_roots``). Nothing is opened, not even stat'ed for existence, before that check, so a
  caption file that is a symlink to ``/proc/self/environ`` is never read.
- **Headers before bytes.** ``read_npy`` / ``read_npz`` parse a ``.npy`` header (numpy's own parsers) and
  compare the bytes it promises with the bytes the file holds before allocating anything: a 40-frame file
  whose header claims a terabyte is ``truncated_file``, a file longer than ``ingest.max_file_frames`` is
  ``too_many_frames``, and pickled object arrays are refused.
- **Bounded text.** ``read_text`` reads at most ``ingest.max_text_bytes`` (``text_too_large`` beyond).

Every problem is a :class:`SourceFileError` with a stable quarantine ``reason``; its detail names the file
(relative to the root) and never quotes the file's content.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["MAX_NPZ_MEMBERS", "MAX_ROW_VALUES", "SourceFileError", "SourceRoot", "npy_shape", "read_npy", "read_npz",
           "read_text"]  # fmt: skip

# No motion format movid reads has more values per frame than this (HumanML3D 263, Motion-X 322, joints
# 22×3, AMASS poses 165); with the frame cap it bounds what one array may ask for.
MAX_ROW_VALUES = 1024
MAX_NPZ_MEMBERS = 64  # an AMASS .npz holds ~6 arrays; thousands of members is not a motion file


class SourceFileError(ValueError):
    """A source file that cannot be used; ``reason`` is the quarantine code, ``path`` the file as named."""

    def __init__(self, reason: str, detail: str, path: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.path = reason, detail, path


def _inside(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


class SourceRoot:
    """One source's root folder and the extra folders its files may resolve into. Resolved folders are
    cached per instance (a stage makes one per batch), so a file costs one ``lstat`` beyond its folder's
    first lookup."""

    def __init__(self, root: str | Path, allowed: tuple[str, ...] | list[str] = (), *, what: str = "the source root"):
        self.root = os.path.realpath(root)
        self.allowed = tuple(os.path.realpath(a) for a in allowed)
        self.what = what  # for details: "the source root", "amass.texts", …
        self._dirs: dict[str, tuple[str, bool]] = {}  # folder as named → (its real path, inside a root)

    def resolve(self, rel: str) -> Path:
        """The real path of ``rel`` (relative to the root; an absolute path is taken as it is), or
        :class:`SourceFileError` ``path_outside_root`` when it resolves outside the root and every allowed
        folder. A path that does not exist resolves to where it would be (callers check existence after)."""
        return Path(self.real_path(rel))

    def real_path(self, rel: str) -> str:
        """``resolve`` as a string (the per-file path of an ingest: no Path object to build)."""
        try:
            if "\x00" in rel:  # (os.path's predicates answer False for it rather than raising)
                raise ValueError("embedded null byte")
            head, _, tail = rel.rpartition("/")
            if os.path.isabs(rel) or tail in ("", ".", ".."):
                real = os.path.realpath(os.path.join(self.root, rel))
                inside = self._contains(real)
            else:
                cached = self._dirs.get(head)
                if cached is None:  # the folder, resolved once; a file in it is inside iff the folder is
                    folder = os.path.realpath(os.path.join(self.root, head))
                    cached = self._dirs[head] = (folder, self._contains(folder))
                folder, inside = cached
                real = os.path.join(folder, tail)
                try:
                    is_link = stat.S_ISLNK(os.lstat(real).st_mode)
                except OSError:  # not there (yet): where it would be
                    is_link = False
                if is_link:
                    real = os.path.realpath(real)
                    inside = self._contains(real)
        except (ValueError, OSError) as exc:  # an embedded NUL, a name too long for the OS
            raise SourceFileError("invalid_path", f"{rel!r:.100}: {exc}", rel) from None
        if inside:
            return real
        raise SourceFileError("path_outside_root", f"{rel!r:.100} resolves outside {self.what} (symlinks and '..' "
                              "resolved); it was not read — add its folder to ingest.allowed_roots to allow it", rel)  # fmt: skip

    def _contains(self, real: str) -> bool:
        return _inside(real, self.root) or any(_inside(real, a) for a in self.allowed)


def _regular(fh, rel: str) -> os.stat_result:
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise SourceFileError("unreadable_file", f"{rel} is not a regular file", rel)
    return st


def _header(fh, rel: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from a .npy header; numpy's own parsers (which refuse a header over
    10,000 bytes), versions 1.0 and 2.0 (3.0 is only written for non-Latin-1 field names)."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise SourceFileError("unreadable_file", f"{rel}: not a .npy array ({str(exc)[:120]})", rel) from None
    return tuple(int(n) for n in shape), bool(fortran), dtype


def _check_header(shape, dtype: np.dtype, available: int, rel: str, max_frames: int, kinds: str) -> int:
    """The byte count the header promises, after refusing what must not be read."""
    if dtype.hasobject:
        raise SourceFileError("unreadable_file", f"{rel}: holds Python objects (pickled data is never loaded)", rel)
    if kinds and dtype.kind not in kinds:
        raise SourceFileError("wrong_dtype", f"{rel}: dtype {dtype.str}, expected a float array", rel)
    if any(n < 0 for n in shape):
        raise SourceFileError("unreadable_file", f"{rel}: header shape {shape} has a negative size", rel)
    if len(shape) > 1 and math.prod(shape[1:]) > MAX_ROW_VALUES:
        raise SourceFileError("wrong_shape", f"{rel}: shape {shape} has more than {MAX_ROW_VALUES} values a frame", rel)
    # the file must back what its header promises (a lying header is caught before any allocation) ...
    need = math.prod(shape) * dtype.itemsize
    if need > available:
        raise SourceFileError("truncated_file", f"{rel}: its header promises shape {shape} of {dtype.str} "
                              f"({need:,} bytes) but the file holds {available:,}", rel)  # fmt: skip
    # ... and a file that really is that long must stay under the cap
    if len(shape) > 1 and shape[0] > max_frames:
        raise SourceFileError("too_many_frames", f"{rel}: {shape[0]} frames; ingest.max_file_frames is {max_frames}", rel)
    if len(shape) <= 1 and math.prod(shape) > max_frames * MAX_ROW_VALUES:  # (a flat array: bounded all the same)
        raise SourceFileError("too_many_frames", f"{rel}: {math.prod(shape)} values in one row; more than "
                              f"ingest.max_file_frames ({max_frames}) frames could hold", rel)  # fmt: skip
    return need


def _shaped(flat: np.ndarray, shape, fortran: bool) -> np.ndarray:
    if fortran:  # as numpy's read_array: the reversed shape, transposed
        return flat.reshape(shape[::-1]).transpose()
    return flat.reshape(shape)


def read_npy(path: str | Path, rel: str, *, max_frames: int, kinds: str = "f") -> np.ndarray:
    """A ``.npy`` array (``path`` already resolved), its header checked before any allocation. ``kinds``:
    the dtype kinds accepted (``"f"``: floating point; ``""``: any non-object)."""
    try:
        with open(path, "rb") as fh:
            st = _regular(fh, rel)
            shape, fortran, dtype = _header(fh, rel)
            count = math.prod(shape)
            _check_header(shape, dtype, st.st_size - fh.tell(), rel, max_frames, kinds)
            flat = np.fromfile(fh, dtype=dtype, count=count)
    except OSError as exc:
        raise SourceFileError("unreadable_file", f"{rel}: {exc.strerror or exc}", rel) from None
    if flat.size != count:  # the file shrank between the check and the read
        raise SourceFileError("truncated_file", f"{rel}: {flat.size} of {count} values could be read", rel)
    return _shaped(flat, shape, fortran)


def npy_shape(path: str | Path, rel: str) -> tuple[int, ...]:
    """The shape a ``.npy`` header declares (``path`` already resolved); the data is not read."""
    try:
        with open(path, "rb") as fh:
            _regular(fh, rel)
            return _header(fh, rel)[0]
    except OSError as exc:
        raise SourceFileError("unreadable_file", f"{rel}: {exc.strerror or exc}", rel) from None


def read_npz(path: Path, rel: str, *, max_frames: int) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (``path`` already resolved), each member's header checked against the size
    the zip directory declares for it before anything is decompressed; never unpickles."""
    arrays = {}
    try:
        with open(path, "rb") as raw:
            _regular(raw, rel)
            with zipfile.ZipFile(raw) as zf:
                members = [i for i in zf.infolist() if not i.is_dir()]
                if len(members) > MAX_NPZ_MEMBERS:
                    raise SourceFileError("unreadable_file", f"{rel}: {len(members)} members; not a motion file", rel)
                for info in members:
                    name = info.filename.removesuffix(".npy")
                    where = f"{rel}[{name[:40]}]"
                    with zf.open(info) as fh:
                        shape, fortran, dtype = _header(fh, where)
                        available = info.file_size - fh.tell()
                        need = _check_header(shape, dtype, available, where, max_frames, kinds="")
                        data = fh.read(need)  # the zip reader never returns more than the member's declared size
                    if len(data) != need:
                        raise SourceFileError("truncated_file", f"{where}: {len(data)} of {need} bytes", rel)
                    arrays[name] = _shaped(np.frombuffer(data, dtype=dtype), shape, fortran)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise SourceFileError("unreadable_file", f"{rel}: not a readable .npz ({str(exc)[:120]})", rel) from None
    except OSError as exc:
        raise SourceFileError("unreadable_file", f"{rel}: {exc.strerror or exc}", rel) from None
    return arrays


def read_text(path: str | Path, rel: str, *, max_bytes: int) -> bytes:
    """A text file's bytes (``path`` already resolved), at most ``max_bytes`` (``text_too_large`` beyond)."""
    try:
        with open(path, "rb") as fh:
            _regular(fh, rel)
            data = fh.read(max_bytes + 1)  # (the size stat gives is 0 for some special files: count what is read)
    except OSError as exc:
        raise SourceFileError("unreadable_file", f"{rel}: {exc.strerror or exc}", rel) from None
    if len(data) > max_bytes:
        raise SourceFileError("text_too_large", f"{rel} is over {max_bytes:,} bytes (ingest.max_text_bytes)", rel)
    return data
