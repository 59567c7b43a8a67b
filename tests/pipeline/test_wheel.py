"""A wheel built from the repository installs a working movid (issue 18): its prompts and presets are package
data. The wheel is built from a copy of the tree (no build files in the repository), installed without
dependencies into a fresh venv that sees the shared venv's site-packages through a .pth line (for numpy,
pyarrow, ray, …) but not the repository; then ``movid sample-data`` and ``movid build`` run from an empty
working directory, and the modules are checked to come from the wheel."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # (~1-2 min: a wheel build, a venv and a small build)

_NOT_SHIPPED = ("*.egg-info", ".*", "__pycache__", "build", "dist", "tests", "bench", "docs", "demo_out", "demo_data")


def _run(args, cwd, env, timeout=600) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:3]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_a_wheel_installs_a_movid_that_builds(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*_NOT_SHIPPED))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp_path / "dist", tree], tmp_path, env)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("movid-*.whl")

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    py = target / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env).strip())
    (site / "shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # the dependencies only
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel], tmp_path, env)

    work = tmp_path / "work"  # an empty working directory: no configs/ to fall back on
    work.mkdir()
    where = _run([py, "-c", "import configs, pipeline, model; print(configs.__file__, pipeline.__file__, model.__file__)"],
                 work, env)  # fmt: skip
    assert all(Path(f).is_relative_to(site) for f in where.split()), where
    movid = target / "bin" / "movid"
    _run([movid, "sample-data", "data", "--motions", "12", "--videos", "0"], work, env)
    _run([movid, "build", "--config", "demo", "--source", "humanml3d=data/humanml3d", "--out", "OUT",
          "--executor", "local", "--quiet"], work, env)  # fmt: skip
    manifest = json.loads((work / "OUT" / "manifest.json").read_text())
    assert manifest["reconciliation"]["ok"]
    assert manifest["counts"]["motion"] and sum(manifest["counts"]["instruction"].values()) > 0
    prompts = Path(manifest["config"]["annotator"]["prompts_dir"])
    assert prompts.is_relative_to(site) and (prompts / "motion_qa.v1.txt").is_file()
    _run([py, "-c", "from model.config import load_train_config; load_train_config('tiny_demo')"], work, env)
