"""Fixtures of the trainer's tests: one demo build (40 synthetic clips, their mirrors, 10 videos) and tiny
local models (a BPE tokenizer trained on the build's conversations, a random 2-layer Llama, a random CLIP
vision tower), saved with save_pretrained and loaded back by the trainer through from_pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import local_build

# Eight caption samples with eight different answers about eight different motions; 000003 / M000003 share
# their question and differ only in left / right, so only the motion tells them apart.
OVERFIT_SAMPLES = ["000000/caption/0", "M000000/caption/0", "000003/caption/0", "M000003/caption/0",
                   "000005/caption/0", "M000005/caption/1", "000007/caption/0", "000009/caption/0"]  # fmt: skip


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> Path:
    from pipeline.sample_data import write_sample_humanml3d, write_sample_videos

    root = tmp_path_factory.mktemp("train_demo")
    write_sample_humanml3d(root / "humanml3d", n_motions=40, seed=0)
    write_sample_videos(root / "videos", root / "humanml3d", 10)
    local_build(None, root / "out", sources=[f"humanml3d={root / 'humanml3d'}", f"video={root / 'videos'}"])
    return root / "out"


@pytest.fixture(scope="session")
def tiny_assets(demo_build, tmp_path_factory) -> dict[str, str]:
    from model.tiny import build_corpus, write_tiny_assets

    return write_tiny_assets(tmp_path_factory.mktemp("tiny_models"), build_corpus(demo_build))


def tiny_overrides(assets: dict, *extra: str, video: bool = True) -> list[str]:
    """--set overrides that point a tiny preset at the test's models."""
    return [f"lm.path={assets['lm']}", f"video.tower={assets['vision'] if video else 'null'}", "train.tensorboard=false",
            "data.loader_threads=0", *extra]  # fmt: skip


@pytest.fixture()
def tiny_config(tiny_assets):
    from model.config import load_train_config

    root = Path(__file__).resolve().parents[2] / "configs" / "train"

    def make(preset: str = "tiny_stage2", *extra: str, video: bool = True):
        return load_train_config(root / f"{preset}.yaml", tiny_overrides(tiny_assets, *extra, video=video))

    return make
