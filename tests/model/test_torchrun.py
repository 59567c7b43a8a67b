"""``torchrun … -m model.train``: two CPU processes over gloo, with DDP and with FSDP (FSDP2's fully_shard),
train to the same losses; an FSDP run resumed from its checkpoint continues with them."""

import subprocess
import sys

import pytest

from model.train import read_metrics
from tests.model.conftest import tiny_overrides

pytestmark = pytest.mark.slow


def _torchrun(build, run, assets, *extra, args=(), rc=0):
    sets = tiny_overrides(assets, "train.max_steps=6", "train.log_every=1", "train.save_every=3", *extra)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "model.train", "--config",
           "configs/train/tiny_stage2.yaml", "--data", str(build), "--out", str(run), *args] + [a for s in sets for a in ("--set", s)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == rc, r.stderr[-3000:]
    return r


def test_ddp_and_fsdp_under_torchrun_agree_and_resume(demo_build, tiny_assets, tmp_path):
    _torchrun(demo_build, tmp_path / "ddp", tiny_assets)
    _torchrun(demo_build, tmp_path / "fsdp", tiny_assets, "train.strategy=fsdp", "train.stop_at_step=3")
    r = _torchrun(demo_build, tmp_path / "fsdp", tiny_assets, "train.strategy=fsdp", rc=1)  # torchrun's rc for a failed rank
    assert "add --resume" in r.stderr
    _torchrun(demo_build, tmp_path / "fsdp", tiny_assets, "train.strategy=fsdp", args=["--resume"])
    ddp, fsdp = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "fsdp")
    assert [r["step"] for r in ddp] == [r["step"] for r in fsdp] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ddp, fsdp, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-5, (a["step"], a["loss"], b["loss"])
