"""Shared fixtures: small generated HumanML3D trees, the real files under tests/data, and build helpers."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # as the movid command sets it (pipeline.cli.ENVIRONMENT)

REAL_HUMANML3D = Path(__file__).parent / "data" / "humanml3d"
# A caption we write for the real clip 012314 (HumanML3D's own texts are not redistributable).
REAL_CAPTION = "a person walks forward and turns around.#a/DET person/NOUN walk/VERB forward/ADV and/CCONJ turn/VERB around/ADV#0.0#0.0"


@pytest.fixture(scope="module")
def ray_temp_dir() -> str:
    """A short folder for a Ray session: Ray's socket paths must stay under 107 bytes (AF_UNIX), which pytest's
    per-worker temp folders (``…/pytest-N/popen-gwK/…`` under ``pytest -n``) can exceed."""
    d = tempfile.mkdtemp(prefix="mvray-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def broken_tree(tmp_path_factory) -> Path:
    """30 synthetic clips + mirrors, plus one record of every broken-input kind (BROKEN.json)."""
    from pipeline.sample_data import write_sample_humanml3d

    root = tmp_path_factory.mktemp("broken") / "humanml3d"
    write_sample_humanml3d(root, n_motions=30, seed=7, broken=True)
    return root


@pytest.fixture(scope="session")
def clean_tree(tmp_path_factory) -> Path:
    from pipeline.sample_data import write_sample_humanml3d

    root = tmp_path_factory.mktemp("clean") / "humanml3d"
    write_sample_humanml3d(root, n_motions=40, seed=3)
    return root


@pytest.fixture()
def real_tree(tmp_path) -> Path:
    """HumanML3D's real split files and its one shipped motion, with a caption for it."""
    root = tmp_path / "humanml3d"
    shutil.copytree(REAL_HUMANML3D, root)
    (root / "texts").mkdir()
    (root / "texts" / "012314.txt").write_text(REAL_CAPTION + "\n")
    return root


def local_build(source: Path | None, out: Path, *sets: str, overwrite: bool = False, sources=None) -> dict:
    from pipeline.build import build
    from pipeline.config import load_config

    cfg = load_config(None, ["executor=local", *sets], sources or [f"humanml3d={source}"])
    return build(cfg, str(out), overwrite=overwrite, show_progress=False)
