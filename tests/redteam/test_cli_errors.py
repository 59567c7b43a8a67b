"""Red-team corpus, the command line's errors (issue 16): a user's mistake — a path that does not exist, is a
file, cannot be read, is not a build — is exit 2 and one ``movid: error:`` line, never a traceback; a bug in
movid is exit 1, one line, and the traceback in a file of the system's temp folder that the line names.
"""

from __future__ import annotations

import errno
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redteam.harness import (
    CliResult,
    Sandbox,
    assert_one_line_error,
    cli_inproc,
    secret_env,
    without_file_privileges,
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    from pipeline.sample_data import write_sample_humanml3d

    root = tmp_path_factory.mktemp("cli-errors") / "humanml3d"
    write_sample_humanml3d(root, n_motions=2, seed=2)
    return root


def _unfinished(tmp: Path) -> Path:
    out = tmp / "out"
    (out / ".movid").mkdir(parents=True)
    (out / ".movid" / "run.json").write_text("{}")
    (out / ".movid.lock").touch()  # (a build that got this far made it)
    return out


def _stranger(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "notes.txt").write_text("mine")
    return tmp / "out"


def _file(tmp: Path) -> Path:
    (tmp / "out").write_text("a file")
    return tmp / "out"


CASES = {  # id: (argv from the case folder, the error line names these)
    "validate_a_path_that_does_not_exist": (lambda t, s: ["validate", t / "nope"], ["does not exist"]),
    "validate_a_file": (lambda t, s: ["validate", _file(t)], ["is not a folder"]),
    "validate_a_strangers_folder": (lambda t, s: ["validate", _stranger(t)], ["no manifest.json"]),
    "validate_an_unfinished_build": (lambda t, s: ["validate", _unfinished(t)], ["no manifest.json"]),
    "inspect_a_path_that_does_not_exist": (lambda t, s: ["inspect", t / "nope"], ["does not exist"]),
    "inspect_a_strangers_folder": (lambda t, s: ["inspect", _stranger(t)], ["holds no movid build"]),
    "report_a_path_that_does_not_exist": (lambda t, s: ["report", t / "nope"], ["no manifest.json"]),
    "requeue_a_path_that_does_not_exist": (lambda t, s: ["requeue", t / "nope"], ["does not exist"]),
    "requeue_a_strangers_folder": (lambda t, s: ["requeue", _stranger(t)], ["holds no movid build"]),
    "requeue_an_unfinished_build": (lambda t, s: ["requeue", _unfinished(t)], ["no finished build to requeue"]),
    "export_a_path_that_does_not_exist": (lambda t, s: ["export", t / "nope", "--format", "llava"], ["no manifest.json"]),
    "build_a_source_that_does_not_exist": (
        lambda t, s: ["build", "--source", f"humanml3d={t / 'nope'}", "--out", t / "out", "--executor", "local"],
        ["is not a directory"]),
    "build_a_config_that_does_not_exist": (
        lambda t, s: ["build", "--config", t / "nope.yaml", "--source", f"humanml3d={s}", "--out", t / "out"],
        ["does not exist"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_user_error_is_one_line_and_exit_2(tmp_path, tree, case):
    argv, needles = CASES[case]
    args = argv(tmp_path, tree)
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(cli_inproc(*args), *needles)
    Sandbox(tmp_path).check_unchanged(before)  # nothing written (not even a lock file)


def _as_user(*argv) -> CliResult:
    proc = subprocess.run([*without_file_privileges(), sys.executable, "-m", "movid", *map(str, argv)],
                          capture_output=True, text=True, env=secret_env(), timeout=300)  # fmt: skip
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def test_validate_an_unreadable_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    out.chmod(0o000)
    try:
        assert_one_line_error(_as_user("validate", out), "Permission denied", str(out / "manifest.json"))
    finally:
        out.chmod(0o755)


def test_build_from_an_unreadable_source(tmp_path, tree):
    import shutil

    src = tmp_path / "humanml3d"
    shutil.copytree(tree, src)
    (src / "train.txt").chmod(0o000)
    try:
        assert_one_line_error(_as_user("build", "--source", f"humanml3d={src}", "--out", tmp_path / "out",
                                       "--executor", "local", "--quiet"), "train.txt")  # fmt: skip
    finally:
        (src / "train.txt").chmod(0o644)


# --- what is not the user's doing ------------------------------------------------------------------------------
def _raising(exc: BaseException):
    def fn(*args, **kwargs):
        raise exc

    return fn


def test_a_bug_is_one_line_exit_1_and_the_traceback_in_a_file(tmp_path, monkeypatch):
    import pipeline.cli  # the command module holds the name it calls

    monkeypatch.setattr(pipeline.cli, "inspect_build", _raising(ZeroDivisionError("division by zero")))
    res = cli_inproc("inspect", tmp_path)
    assert res.rc == 1 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("movid:")]
    assert len(lines) == 1 and "internal error (a bug in movid): ZeroDivisionError: division by zero" in lines[0]
    path = Path(re.search(r"the full traceback is in (\S+)", lines[0]).group(1))
    try:
        text = path.read_text()
        assert text.startswith("Traceback") and "ZeroDivisionError: division by zero" in text and "fn" in text
        assert path.stat().st_mode & 0o077 == 0  # only the user can read it
    finally:
        path.unlink()


def test_an_io_error_that_is_not_a_path_problem_is_exit_1_with_its_traceback(tmp_path, monkeypatch):
    import pipeline.cli  # the command module holds the name it calls

    monkeypatch.setattr(pipeline.cli, "inspect_build", _raising(OSError(errno.EIO, "Input/output error")))
    res = cli_inproc("inspect", tmp_path)
    assert res.rc == 1 and "Traceback" not in res.stderr and "Input/output error" in res.stderr
    path = Path(re.search(r"the full traceback is in (\S+)", res.stderr).group(1))
    path.unlink()


def test_a_permission_error_is_a_user_error(tmp_path, monkeypatch):
    import pipeline.cli  # the command module holds the name it calls

    monkeypatch.setattr(pipeline.cli, "inspect_build",
                        _raising(PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))))  # fmt: skip
    assert_one_line_error(cli_inproc("inspect", tmp_path), "Permission denied", str(tmp_path / "x"))


def test_ctrl_c_is_a_line_not_a_traceback(tmp_path, monkeypatch):
    import pipeline.cli  # the command module holds the name it calls

    monkeypatch.setattr(pipeline.cli, "inspect_build", _raising(KeyboardInterrupt()))
    res = cli_inproc("inspect", tmp_path)
    assert res.rc == 130 and "Traceback" not in res.stderr and "interrupted" in res.stderr
