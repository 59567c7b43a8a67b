"""Red-team corpus, file system and symlinks around ``OUT`` (issue 16): ``--overwrite`` removes only what movid
wrote and never follows a symlink, sources and ``OUT`` never overlap, ``OUT`` that is a file / read-only / a
stranger's folder is a one-line error, and ``movid report --dest`` never replaces a folder that is not a report
movid wrote.

One clean build serves the module; each case works on a copy of it. The overwrite cases share one
``build --overwrite`` of a copy into which every user file and hostile symlink was planted first: each plant
is its own test id asserting its own outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redteam.harness import (
    SECRET,
    SECRET_ENV,
    CliResult,
    Sandbox,
    assert_one_line_error,
    cli_inproc,
    secret_env,
    without_file_privileges,
)

SETS = ("--executor", "local", "--quiet", "--set", "plan.unit_size=4")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(source tree, a finished build of it)."""
    from pipeline.sample_data import write_sample_humanml3d
    from tests.conftest import local_build

    root = tmp_path_factory.mktemp("out-safety")
    src = root / "humanml3d"
    write_sample_humanml3d(src, n_motions=4, seed=5)
    local_build(src, root / "build", "plan.unit_size=4")
    return src, root / "build"


def _case(root: Path, base) -> tuple[Path, Path]:
    """A copy of the source and of the build under ``root`` (so the Sandbox sees both)."""
    src, out = root / "humanml3d", root / "out"
    shutil.copytree(base[0], src)
    shutil.copytree(base[1], out, symlinks=True)
    return src, out


def build(src: Path, out: Path, *extra: str):
    old = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = SECRET  # as an API key would be: it must not reach OUT
    try:
        return cli_inproc("build", "--source", f"humanml3d={src}", "--out", out, *SETS, *extra)
    finally:
        os.environ.pop(SECRET_ENV) if old is None else os.environ.__setitem__(SECRET_ENV, old)


# --- one --overwrite of a build that holds user files and hostile symlinks ------------------------------
@pytest.fixture(scope="module")
def overwritten(tmp_path_factory, base):
    root = tmp_path_factory.mktemp("overwrite")
    src, out = _case(root, base)
    subprocess.run([sys.executable, "-m", "movid", "report", str(out), "--samples", "1"], check=True,
                   capture_output=True, env=secret_env())  # fmt: skip
    subprocess.run([sys.executable, "-m", "movid", "export", str(out), "--format", "llava"], check=True,
                   capture_output=True, env=secret_env())  # fmt: skip
    victim = root / "victim"  # outside OUT: nothing in it may change
    (victim / "docs").mkdir(parents=True)
    (victim / "docs" / "index.html").write_text("victim docs")
    (victim / "bench").mkdir()
    shutil.copy(out / "bench" / "part-00000.parquet", victim / "bench" / "part-00000.parquet")
    (victim / "file.txt").write_text("victim file")
    (victim / "listed.txt").write_text("a manifest names me")
    plants = {
        "notes.txt": "a user's note",
        "mydir/data.csv": "a,b\n1,2\n",
        "motion/train/mine.txt": "a user's file inside a table folder",
        "validation/keep.md": "a user's file beside the validation report",
        "report/user.txt": "a user's file beside movid's report",
        "export/llava/mine.json": "[]",
        ".annotation_cache/answer.json": "{}",
    }
    for rel, text in plants.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    shutil.rmtree(out / "validation" / "data_docs")
    (out / "validation" / "data_docs").symlink_to(victim / "docs")  # a movid path that is a link
    shutil.rmtree(out / "bench")
    (out / "bench").symlink_to(victim / "bench")  # a table folder that is a link (the manifest lists a shard in it)
    (out / "link-to-victim").symlink_to(victim)  # a user's link
    shard = out / "motion" / "train" / "part-00000.parquet"
    shard.unlink()
    shard.symlink_to(victim / "file.txt")  # a shard that is a link
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"] += [{"table": "motion", "split": "train", "path": "../victim/listed.txt", "rows": 1, "bytes": 1,
                            "sha256": "0"},
                           {"table": "motion", "split": "train", "path": str(victim / "file.txt"), "rows": 1,
                            "bytes": 1, "sha256": "0"}]  # fmt: skip
    # an edited manifest naming OUT itself, the lock, a user's folder and file, and a whole table folder
    manifest["shards"] += [{"table": "motion", "split": "train", "path": p, "rows": 1, "bytes": 1, "sha256": "0"}
                           for p in (".", "./", ".movid.lock", "mydir", "notes.txt", "motion", "motion/train")]
    (out / "manifest.json").write_text(json.dumps(manifest))
    lock_inode = (out / ".movid.lock").stat().st_ino
    sandbox = Sandbox(root, out)
    before = sandbox.snapshot()
    res = build(src, out, "--overwrite", "--set", "seed=1")
    return {"res": res, "out": out, "sandbox": sandbox, "before": before, "plants": plants, "victim": victim,
            "lock_inode": lock_inode}  # fmt: skip


OVERWRITE_CASES = ["build_succeeds_and_reconciles", "user_files_survive", "movid_report_removed_user_file_kept",
                   "movid_export_removed_user_export_kept", "symlinked_data_docs_unlinked_not_followed",
                   "symlinked_table_folder_not_followed", "symlinked_shard_unlinked_as_link",
                   "manifest_paths_outside_out_not_deleted", "manifest_naming_what_is_not_a_shard_removes_none_of_it",
                   "user_symlink_kept_as_link", "lock_file_kept",
                   "no_stale_shard_left"]  # fmt: skip


@pytest.mark.parametrize("case", OVERWRITE_CASES)
def test_overwrite_removes_only_what_movid_wrote(overwritten, case):
    o = overwritten
    out, res = o["out"], o["res"]
    assert res.rc == 0, res.stderr
    if case == "build_succeeds_and_reconciles":
        manifest = o["sandbox"].check_build(out, o["before"], stderr=res.stderr)  # victim unchanged too
        assert manifest["config"]["seed"] == 1
    elif case == "user_files_survive":
        for rel, text in o["plants"].items():
            if not rel.startswith(("report/", "export/")):
                assert (out / rel).read_text() == text, rel
    elif case == "movid_report_removed_user_file_kept":
        assert not (out / "report" / "index.html").exists() and not (out / "report" / ".movid-report").exists()
        assert not (out / "report" / "assets").exists()
        assert (out / "report" / "user.txt").read_text() == o["plants"]["report/user.txt"]
    elif case == "movid_export_removed_user_export_kept":
        assert sorted(p.name for p in (out / "export" / "llava").iterdir()) == ["mine.json"]
    elif case == "symlinked_data_docs_unlinked_not_followed":
        assert (o["victim"] / "docs" / "index.html").read_text() == "victim docs"
        assert not (out / "validation" / "data_docs").is_symlink()
    elif case == "symlinked_table_folder_not_followed":
        assert (o["victim"] / "bench" / "part-00000.parquet").is_file()
        assert (out / "bench").is_dir() and not (out / "bench").is_symlink()
    elif case == "symlinked_shard_unlinked_as_link":
        assert (o["victim"] / "file.txt").read_text() == "victim file"
        assert not (out / "motion" / "train" / "part-00000.parquet").is_symlink()
    elif case == "manifest_paths_outside_out_not_deleted":
        assert (o["victim"] / "listed.txt").read_text() == "a manifest names me"
        assert (o["victim"] / "file.txt").is_file()
    elif case == "manifest_naming_what_is_not_a_shard_removes_none_of_it":
        assert (out / ".movid.lock").stat().st_ino == o["lock_inode"]
        assert (out / "notes.txt").is_file() and (out / "mydir" / "data.csv").is_file()
        assert (out / "motion" / "train" / "mine.txt").is_file()
    elif case == "user_symlink_kept_as_link":
        assert (out / "link-to-victim").is_symlink() and (out / "link-to-victim").resolve() == o["victim"]
    elif case == "lock_file_kept":
        assert (out / ".movid.lock").stat().st_ino == o["lock_inode"]
    elif case == "no_stale_shard_left":
        manifest = json.loads((out / "manifest.json").read_text())
        listed = {s["path"] for s in manifest["shards"]}
        on_disk = {p.relative_to(out).as_posix() for t in ("motion", "video", "instruction", "clip_stats", "quarantine", "bench")
                   for p in (out / t).rglob("*.parquet")}  # fmt: skip
        assert on_disk == listed


def test_an_overwrite_cut_off_while_removing_finishes_on_rerun(tmp_path, base, monkeypatch):
    """A removal killed halfway leaves its journal; the rerun finishes it (user files still kept) and builds."""
    from pipeline.runstate import RunState

    src, out = _case(tmp_path, base)
    (out / "mine.txt").write_text("mine")
    real, calls = RunState._remove, []

    def remove_then_die(self, rel):
        calls.append(rel)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a Ctrl-C halfway through
        real(self, rel)

    monkeypatch.setattr(RunState, "_remove", remove_then_die)
    res = build(src, out, "--overwrite", "--set", "seed=1")
    assert res.rc == 130 and "Traceback" not in res.stderr
    assert (out / ".movid" / "clear.json").is_file() and not (out / "manifest.json").exists()
    monkeypatch.setattr(RunState, "_remove", real)
    before = Sandbox(tmp_path, out).snapshot()
    res = build(src, out, "--set", "seed=1")  # even without --overwrite: the replacement was already decided
    assert res.rc == 0, res.stderr
    Sandbox(tmp_path, out).check_build(out, before, stderr=res.stderr)
    assert (out / "mine.txt").read_text() == "mine" and not (out / ".movid" / "clear.json").exists()


# --- OUT that cannot be used --------------------------------------------------------------------------------
def test_out_is_a_file(tmp_path, base):
    target = tmp_path / "out"
    target.write_text("not a folder")
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(build(base[0], target), "is not a folder")
    Sandbox(tmp_path).check_unchanged(before)


def test_out_under_a_file(tmp_path, base):
    (tmp_path / "file").write_text("x")
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(build(base[0], tmp_path / "file" / "out"), "cannot create")
    Sandbox(tmp_path).check_unchanged(before)


def test_a_strangers_folder_is_refused_and_left_as_it_was(tmp_path, base):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = Sandbox(tmp_path).snapshot()  # the lock file must not appear in it either
    assert_one_line_error(build(base[0], out, "--overwrite"), "not empty and holds no movid build")
    Sandbox(tmp_path).check_unchanged(before)


def test_read_only_out_is_a_one_line_error(tmp_path, base):
    src, out = _case(tmp_path, base)
    for p in [out, *out.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o555 if p.is_dir() else 0o444)
    before = Sandbox(tmp_path).snapshot()
    try:
        proc = subprocess.run([*without_file_privileges(), sys.executable, "-m", "movid", "build", "--source",
                               f"humanml3d={src}", "--out", str(out), *SETS, "--set", "seed=1", "--overwrite"],
                              capture_output=True, text=True, env=secret_env(), timeout=300)  # fmt: skip
        assert_one_line_error(CliResult(proc.returncode, proc.stdout, proc.stderr), "not writable")
        Sandbox(tmp_path).check_unchanged(before)
        assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 0
    finally:
        for p in [out, *out.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_lock_file_planted_as_a_symlink_is_refused(tmp_path, base):
    src, out = _case(tmp_path, base)
    (tmp_path / "victim.txt").write_text("victim")
    (out / ".movid.lock").unlink()
    (out / ".movid.lock").symlink_to(tmp_path / "victim.txt")
    before = Sandbox(tmp_path, out).snapshot()
    assert_one_line_error(build(src, out, "--overwrite", "--set", "seed=1"), ".movid.lock is a symlink")
    Sandbox(tmp_path, out).check_unchanged(before)
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 0


# --- sources and OUT never overlap ---------------------------------------------------------------------------
def test_a_source_inside_out_is_refused(tmp_path, base):
    _, out = _case(tmp_path, base)
    inner = out / "humanml3d"
    shutil.copytree(base[0], inner)
    before = Sandbox(tmp_path).snapshot()  # OUT included: nothing in it may go
    assert_one_line_error(build(inner, out, "--overwrite", "--set", "seed=1"), "lies inside --out")
    Sandbox(tmp_path).check_unchanged(before)


def test_a_source_reached_through_a_symlink_into_out_is_refused(tmp_path, base):
    _, out = _case(tmp_path, base)
    shutil.copytree(base[0], out / "humanml3d")
    (tmp_path / "looks-outside").symlink_to(out / "humanml3d")
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(build(tmp_path / "looks-outside", out, "--overwrite", "--set", "seed=1"), "lies inside --out")
    Sandbox(tmp_path).check_unchanged(before)


def test_out_inside_a_source_is_refused(tmp_path, base):
    src = tmp_path / "humanml3d"
    shutil.copytree(base[0], src)
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(build(src, src / "out"), "lies inside the humanml3d source")
    Sandbox(tmp_path).check_unchanged(before)  # not even an empty OUT was made in the source


# --- movid report --dest ---------------------------------------------------------------------------------------
def report(out: Path, dest: Path | None = None):
    return cli_inproc("report", out, "--samples", "1", *(["--dest", dest] if dest else []))


def test_report_refuses_a_folder_that_is_not_a_movid_report(tmp_path, base):
    dest = tmp_path / "site"
    (dest / "assets").mkdir(parents=True)
    (dest / "index.html").write_text("<h1>my site</h1>")
    (dest / "assets" / "logo.png").write_bytes(b"\x89PNG")
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(report(base[1], dest), "holds no report movid wrote")
    Sandbox(tmp_path).check_unchanged(before)


def test_report_refuses_a_dest_that_is_a_file(tmp_path, base):
    (tmp_path / "report").write_text("x")
    assert_one_line_error(report(base[1], tmp_path / "report"), "is not a folder")
    assert (tmp_path / "report").read_text() == "x"


def test_report_refuses_a_dest_inside_a_table_folder(tmp_path, base):
    _, out = _case(tmp_path, base)
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(report(out, out / "motion" / "pages"), "inside the build's own folders")
    Sandbox(tmp_path).check_unchanged(before)


def test_report_replaces_its_own_report_and_keeps_a_users_files(tmp_path, base):
    dest = tmp_path / "site"
    assert report(base[1], dest).rc == 0
    (dest / "notes.txt").write_text("mine")
    (dest / "assets" / "logo.png").write_bytes(b"\x89PNG")
    (dest / "assets" / "motion-999.gif").write_bytes(b"GIF89a")  # a stale image of an earlier report: movid's
    (tmp_path / "victim.html").write_text("victim")
    (dest / "index.html").unlink()
    (dest / "index.html").symlink_to(tmp_path / "victim.html")  # a planted link: replaced, never written through
    res = report(base[1], dest)
    assert res.rc == 0, res.stderr
    assert (dest / "notes.txt").read_text() == "mine" and (dest / "assets" / "logo.png").read_bytes() == b"\x89PNG"
    assert not (dest / "assets" / "motion-999.gif").exists()
    assert (tmp_path / "victim.html").read_text() == "victim"
    assert not (dest / "index.html").is_symlink() and "movid build report" in (dest / "index.html").read_text()


def test_report_refuses_a_manifest_shard_path_outside_out(tmp_path, base):
    _, out = _case(tmp_path, base)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["path"] = "../../../../../../etc/passwd"
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = Sandbox(tmp_path).snapshot()
    assert_one_line_error(report(out), "which movid will not open", "outside OUT")
    Sandbox(tmp_path).check_unchanged(before)  # not even the report folder was made
