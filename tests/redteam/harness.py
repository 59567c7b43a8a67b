"""The red-team corpus's shared checks (issue 16). Every hostile or messy case asserts its exact outcome —
a quarantine reason, or a one-line error with exit 2 — and every build a case makes also asserts the
invariants that hold for any input:

- the manifest's reconciliation is ok;
- no file was written, changed or removed outside ``OUT`` (sources included): ``Sandbox`` snapshots the
  case's whole folder, without following symlinks, before and after;
- no secret in ``OUT``: the process environment holds ``SECRET`` (as an API key would be), and every byte
  of every file under ``OUT`` — and every decoded value of every Parquet file, whose pages are compressed —
  is searched for it;
- no traceback on stderr.

Cases are grouped so that one build serves many records (a build costs seconds; a record costs nothing):
each record is its own parametrised test id, asserting its own reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

__all__ = ["SECRET", "SECRET_ENV", "CliResult", "Sandbox", "assert_no_secret", "assert_one_line_error", "cli",
           "cli_inproc", "quarantine", "quarantine_reasons", "secret_env", "without_file_privileges"]  # fmt: skip

SECRET_ENV = "MOVID_REDTEAM_KEY"
SECRET = "sk-redteam-7f3a9c2e51d84b06a1e9f0c3d2b7a5e4"  # what an attacker would love to find in OUT
REPO = Path(__file__).resolve().parents[2]


def secret_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess case: this process's, plus the secret (as a key variable) and ``extra``."""
    return os.environ | {SECRET_ENV: SECRET, "PYTHONPATH": str(REPO)} | extra


@dataclass
class CliResult:
    rc: int
    stdout: str
    stderr: str


def cli(*argv: str, env: dict | None = None, timeout: float = 300, cwd: str | Path | None = None) -> CliResult:
    """``movid ARGV`` in a fresh process (the faithful path: tracebacks, exit codes and stderr are real)."""
    proc = subprocess.run([sys.executable, "-m", "movid", *map(str, argv)], capture_output=True, text=True,
                          env=env or secret_env(), timeout=timeout, cwd=cwd)  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def cli_inproc(*argv: str) -> CliResult:
    """``movid ARGV`` in this process (no start-up cost): ``main`` must return an exit code, never raise — an
    exception escaping ``main`` is what would print a traceback. ``SystemExit`` (argparse's usage errors)
    gives its code."""
    from movid.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(list(map(str, argv)))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 2
    return CliResult(rc, out.getvalue(), err.getvalue())


def assert_one_line_error(res: CliResult, *needles: str, rc: int = 2) -> str:
    """A user error: exit ``rc`` (2), no traceback, one ``movid: error: …`` line naming ``needles``."""
    assert "Traceback" not in res.stderr, res.stderr
    assert res.rc == rc, (res.rc, res.stdout, res.stderr)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("movid: error:")]
    assert len(errors) == 1, res.stderr
    for n in needles:
        assert n in errors[0], (n, errors[0])
    return errors[0]


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    if path.is_dir():
        return "dir"
    if not path.is_file():  # a FIFO or socket a case planted: reading it would block
        return f"special:{oct(path.lstat().st_mode)}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"{oct(path.stat().st_mode & 0o7777)}:{h.hexdigest()}"


class Sandbox:
    """One case's folder: its sources and its ``OUT`` live under ``root``. ``snapshot()`` records every path
    under ``root`` except the ``OUT`` folders given (symlinks as their targets, never followed), so that
    ``check_unchanged(before)`` proves nothing outside ``OUT`` was written, changed or removed."""

    def __init__(self, root: Path, *outs: Path):
        self.root, self.outs = Path(root), [Path(o) for o in outs]

    def _skip(self, p: Path) -> bool:
        return any(p == o or o in p.parents for o in self.outs)

    def snapshot(self) -> dict[str, str]:
        snap = {}
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            d = Path(dirpath)
            dirnames[:] = [n for n in dirnames if not self._skip(d / n)]
            for name in dirnames + filenames:
                p = d / name
                if not self._skip(p):
                    snap[str(p.relative_to(self.root))] = _digest(p)
        return snap

    def check_unchanged(self, before: dict[str, str]) -> None:
        after = self.snapshot()
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        assert not (added or removed or changed), {"added": added, "removed": removed, "changed": changed}

    def check_build(self, out: Path, before: dict[str, str], *, stderr: str = "") -> dict:
        """The invariants of any build a case makes; returns its manifest."""
        assert "Traceback" not in stderr, stderr
        manifest = json.loads((Path(out) / "manifest.json").read_text())
        assert manifest["reconciliation"]["ok"], manifest["reconciliation"]
        self.check_unchanged(before)
        assert_no_secret(out)
        return manifest


def assert_no_secret(out: Path, secret: str = SECRET) -> None:
    """``secret`` in no byte of any file under ``out``, and in no decoded Parquet value."""
    needle = secret.encode()
    for dirpath, _dirs, files in os.walk(out, followlinks=False):
        for name in files:
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            data = p.read_bytes()
            assert needle not in data, f"the secret is in {p}"
            if name.endswith(".parquet"):
                text = json.dumps(pq.read_table(p).to_pylist(), default=repr)
                assert secret not in text, f"the secret is in the rows of {p}"


def without_file_privileges() -> list[str]:
    """A command prefix under which file permissions bind: ``[]`` for a normal user; for root (which ignores
    them) ``setpriv`` dropping the capabilities that override them. Skips the test where neither works."""
    import shutil

    import pytest

    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: file permissions cannot be made to bind")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def quarantine(out: Path) -> list[dict]:
    """Every quarantine row of a build (without the big columns)."""
    return [r for f in sorted((Path(out) / "quarantine").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def quarantine_reasons(out: Path) -> dict[str, str]:
    """record id → quarantine reason."""
    return {r["record_id"]: r["reason"] for r in quarantine(out)}
