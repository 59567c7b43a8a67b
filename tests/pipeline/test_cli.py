"""The ``movid`` command as users run it (subprocesses, exit codes, what it prints)."""

import json
import shutil
import subprocess
import sys

import pytest

MOVID = [sys.executable, "-m", "movid"]


def run(*args, **kw):
    return subprocess.run(MOVID + list(args), capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.ray
def test_sample_data_build_inspect_on_a_local_ray(tmp_path):
    r = run("sample-data", str(tmp_path / "data"), "--motions", "12", "--seed", "4", "--broken")
    assert r.returncode == 0, r.stderr
    assert "wrote 24 motions" in r.stdout
    out = tmp_path / "out"
    r = run("build", "--source", f"humanml3d={tmp_path / 'data' / 'humanml3d'}", "--out", str(out),
            "--set", "plan.unit_size=8")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Started a local Ray instance" in r.stderr  # the default executor really is Ray
    assert "reconciliation: ok" in r.stdout and "ray executor" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["executor"] == "ray" and manifest["units"]["ran"] == manifest["units"]["total"] >= 3
    r = run("inspect", str(out))
    assert r.returncode == 0 and "split_conflict" in r.stdout and "motion       train" in r.stdout


def test_config_errors_stop_before_any_work(tmp_path):
    data = tmp_path / "data"
    assert run("sample-data", str(data), "--motions", "2").returncode == 0
    out = tmp_path / "out"
    r = run("build", "--source", f"humanml3d={data / 'humanml3d'}", "--out", str(out), "--set", "shard.max_rowz=3")
    assert r.returncode == 2 and "shard.max_rowz: unknown config key" in r.stderr
    r = run("build", "--source", f"humanml3d={tmp_path / 'missing'}", "--out", str(out))
    assert r.returncode == 2 and "missing' is not a directory" in r.stderr
    r = run("build", "--out", str(out), "--executor", "local")
    assert r.returncode == 2 and "no source given" in r.stderr
    assert not out.exists()


def test_inspect_of_a_non_build_fails_clearly(tmp_path):
    r = run("inspect", str(tmp_path))
    assert r.returncode == 2 and "holds no movid build" in r.stderr  # a user error: exit 2, one line
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_lists_every_command(capsys):
    import pytest

    from movid.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for command in ("sample-data", "build", "inspect", "validate", "requeue", "export", "report", "score", "train",
                    "generate"):  # fmt: skip
        assert command in text


def test_a_build_that_writes_no_motion_rows_warns_and_strict_fails(tmp_path):
    data = tmp_path / "data"
    assert run("sample-data", str(data), "--motions", "3", "--videos", "0").returncode == 0
    shutil.rmtree(data / "humanml3d" / "new_joint_vecs")  # the wrong folder, or half a download
    args = ["build", "--source", f"humanml3d={data / 'humanml3d'}", "--executor", "local", "--quiet"]
    r = run(*args, "--out", str(tmp_path / "a"))
    assert r.returncode == 0
    assert "movid: warning: the build wrote no motion rows (6 records listed by its sources, 6 quarantined)" in r.stderr
    assert "top reason: missing_file (6), e.g. 000000: new_joint_vecs/000000.npy is missing" in r.stderr
    r = run(*args, "--out", str(tmp_path / "b"), "--strict")
    assert r.returncode == 1 and "--strict: the build has warnings" in r.stderr


def test_a_sound_build_does_not_warn(tmp_path, clean_tree):
    r = run("build", "--source", f"humanml3d={clean_tree}", "--out", str(tmp_path / "o"), "--executor", "local",
            "--quiet", "--strict", "--set", "plan.unit_size=40")  # fmt: skip
    assert r.returncode == 0 and "warning" not in r.stderr


def test_sample_data_refuses_a_non_empty_folder_and_overwrites_only_its_own(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    r = run("sample-data", str(mine), "--motions", "2", "--videos", "0")
    assert r.returncode == 2 and "is not empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run("sample-data", str(mine), "--motions", "2", "--videos", "0", "--overwrite")
    assert r.returncode == 2 and "was not written by movid sample-data" in r.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]

    data = tmp_path / "data"
    assert run("sample-data", str(data), "--motions", "3", "--videos", "0").returncode == 0
    stale = data / "humanml3d" / "new_joint_vecs" / "999999.npy"
    stale.write_bytes(b"old")
    (data / "notes.txt").write_text("the user's")
    assert run("sample-data", str(data), "--motions", "2", "--videos", "0").returncode == 2
    assert run("sample-data", str(data), "--motions", "2", "--videos", "0", "--overwrite").returncode == 0
    assert not stale.exists() and (data / "notes.txt").read_text() == "the user's"
    assert len(list((data / "humanml3d" / "new_joint_vecs").iterdir())) == 4  # 2 clips and their mirrors


def test_a_changed_build_identity_names_the_keys_that_changed(tmp_path, clean_tree):
    args = ["build", "--source", f"humanml3d={clean_tree}", "--out", str(tmp_path / "o"), "--executor", "local", "--quiet"]
    assert run(*args, "--set", "shard.max_rows=40").returncode == 0
    r = run(*args, "--set", "shard.max_rows=50", "--set", "seed=3", "--set", "ray.max_retries=1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "holds a different build (config_hash: seed 0 → 3; shard.max_rows 40 → 50" in r.stderr  # (not ray.*)


def test_an_llm_build_and_validate_stay_quiet(tmp_path, clean_tree):
    """Third-party INFO lines (a great-expectations temp folder per context, ~200 lines per validate, one
    httpx line per request) stay out of the output unless --verbose."""
    from tests.llm_server import FakeLLM

    out = tmp_path / "o"
    with FakeLLM() as server:
        r = run("build", "--source", f"humanml3d={clean_tree}", "--out", str(out), "--executor", "local", "--quiet",
                "--set", "annotator.backend=openai", "--set", f"annotator.base_url={server.base_url}",
                "--set", "annotator.model=m", "--set", "annotator.tasks=[qa]",
                "--set", f"annotator.cache_dir={tmp_path / 'cache'}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert server.requests > 0 and "HTTP Request" not in r.stderr and "great_expectations" not in r.stderr
    assert len(r.stderr.splitlines()) <= 2, r.stderr  # movid's own "N work units" line
    r = run("validate", "--quiet", str(out))
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    assert len(r.stdout.splitlines()) <= 8 and r.stdout.splitlines()[-1].startswith("valid")
    r = run("-v", "validate", "--quiet", str(out))
    assert "great_expectations" in r.stderr  # --verbose lets them through
