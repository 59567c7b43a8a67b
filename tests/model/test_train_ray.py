"""Training through Ray Train on a Ray started once for this module: two CPU workers (DDP over gloo) fed by
``ray.data.read_parquet``; the loss falls, the run is checkpointed and logged, Ray Data reads exactly the
samples ``datasets`` reads, and (slow) a Ray run resumed from a checkpoint continues with the same losses."""

import os

import pyarrow as pa
import pytest

from model.checkpoint import latest_checkpoint, read_state
from model.train import read_metrics, train

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local(ray_temp_dir):
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=2, object_store_memory=128 * 1024**2, include_dashboard=False,
             _temp_dir=ray_temp_dir, log_to_driver=False)  # fmt: skip
    yield
    ray.shutdown()


FAST = ["optim.lr=5e-3", "optim.lr_lm=5e-3", "optim.lr_projector=5e-3", "optim.lr_motion_encoder=5e-3",
        "optim.schedule=constant", "optim.warmup_ratio=0", "train.batch_size=4"]  # fmt: skip


def test_two_worker_ddp_through_ray_train_learns(ray_local, demo_build, tiny_config, tmp_path):
    # The whole tiny LM trains (LoRA on q/v of a random 64-wide LM with a frozen random head barely moves its
    # loss in 16 steps; the LoRA path is what the resume tests run).
    cfg = tiny_config("tiny_stage2", *FAST, "lm.mode=full", "optim.lr_lm=3e-3", "train.max_steps=16", "train.log_every=4",
                      "train.save_every=8")  # fmt: skip
    last = train(cfg, demo_build, tmp_path / "run", executor="ray", workers=2, show_progress=False)
    metrics = read_metrics(tmp_path / "run")
    assert [r["step"] for r in metrics] == [4, 8, 12, 16] and last["step"] == 16
    assert metrics[-1]["loss"] < metrics[0]["loss"] - 1.0, [r["loss"] for r in metrics]
    assert metrics[0]["samples"] == 4 * 4 * 2  # 4 steps × batch 4 × 2 workers
    state = read_state(latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 16 and state["world_size"] == 2


def test_ray_data_reads_the_samples_datasets_reads(ray_local, demo_build, tiny_config):
    import ray

    from model.data import local_tables, ray_datasets

    cfg = tiny_config("tiny_stage2")
    local = local_tables(cfg, demo_build)
    remote = ray_datasets(cfg, demo_build)
    for name, key in (("samples", "sample_id"), ("motions", "motion_id"), ("videos", "video_id")):
        a = local[name].sort_by(key)
        b = pa.concat_tables(ray.get(remote[name].to_arrow_refs())).sort_by(key)
        assert a.num_rows == b.num_rows > 0, name
        assert a.to_pylist() == b.select(a.column_names).to_pylist(), name


@pytest.mark.slow
def test_ray_run_resumed_from_a_checkpoint_continues_with_the_same_losses(ray_local, demo_build, tiny_config, tmp_path):
    sets = [*FAST, "train.max_steps=8", "train.log_every=1", "train.save_every=4"]
    train(tiny_config("tiny_stage2", *sets), demo_build, tmp_path / "whole", executor="ray", workers=2, show_progress=False)
    train(tiny_config("tiny_stage2", *sets, "train.stop_at_step=4"), demo_build, tmp_path / "split", executor="ray",
          workers=2, show_progress=False)  # fmt: skip
    train(tiny_config("tiny_stage2", *sets), demo_build, tmp_path / "split", executor="ray", workers=2, resume=True,
          show_progress=False)  # fmt: skip
    whole, split = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "split")
    assert [r["step"] for r in split] == list(range(1, 9))
    for a, b in zip(whole, split, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-6, (a["step"], a["loss"], b["loss"])
