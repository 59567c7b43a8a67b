"""Training data: HumanML3D-style Mean/Std, the join of instructions with their motions and videos, collated
batches, and the deterministic, rank-disjoint, length-bucketed epoch plans."""

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from model.data import (
    MotionStats,
    TrainData,
    epoch_plan,
    feature_moments,
    local_motion_stats,
    local_tables,
    stats_from_moments,  # fmt: skip
)
from model.template import IGNORE_INDEX, MOTION_TOKEN, VIDEO_TOKEN
from schemas.motion import FEATURE_DIM, FEATURE_LAYOUT


def _features_table(arrays):
    from schemas.motion import _nested

    return pa.table({"parent_id": pa.array([None] * len(arrays), pa.string()), "features": _nested(arrays, (FEATURE_DIM,))})


def test_stats_average_std_within_each_named_group_and_add_up_over_batches():
    rng = np.random.default_rng(0)
    clips = [rng.normal(rng.normal(size=FEATURE_DIM), rng.uniform(0.1, 3, FEATURE_DIM), (n, FEATURE_DIM)).astype(np.float32)
             for n in (40, 57, 90)]  # fmt: skip
    whole = stats_from_moments([feature_moments(_features_table(clips))])
    parts = stats_from_moments([feature_moments(_features_table(clips[:1])), feature_moments(_features_table(clips[1:]))])
    x = np.concatenate(clips)
    np.testing.assert_allclose(whole.mean, x.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(parts.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(parts.std, whole.std, rtol=1e-6)
    for name, part in FEATURE_LAYOUT.items():
        assert np.allclose(whole.std[part], x.std(0)[part].mean(), rtol=1e-4), name


def test_sub_clips_do_not_count_twice(demo_build):
    stats = local_motion_stats(demo_build)
    motions = pads.dataset(str(demo_build / "motion" / "train"), format="parquet").to_table()
    full = [np.asarray(f, np.float32) for f, p in zip(motions["features"].to_pylist(), motions["parent_id"].to_pylist(),
                                                       strict=True) if p is None]  # fmt: skip
    np.testing.assert_allclose(stats.mean, np.concatenate(full).mean(0), rtol=1e-4, atol=1e-5)


def test_epoch_plans_are_deterministic_disjoint_and_bucketed():
    lens = np.random.default_rng(1).integers(20, 400, 103)
    a = epoch_plan(lens, seed=3, epoch=0, batch_size=4, world_size=2)
    assert a.shape == (12, 2, 4)
    assert np.array_equal(a, epoch_plan(lens, seed=3, epoch=0, batch_size=4, world_size=2))
    assert not np.array_equal(a, epoch_plan(lens, seed=3, epoch=1, batch_size=4, world_size=2))
    assert not np.array_equal(a, epoch_plan(lens, seed=4, epoch=0, batch_size=4, world_size=2))
    assert len(np.unique(a)) == a.size  # no sample twice in an epoch, none on two ranks
    spread = np.mean([np.ptp(lens[b]) for b in a.reshape(-1, 4)])
    plain = epoch_plan(lens, seed=3, epoch=0, batch_size=4, world_size=2, bucketing=False)
    assert spread < 0.5 * np.mean([np.ptp(lens[b]) for b in plain.reshape(-1, 4)])
    with pytest.raises(ValueError, match="do not fill one batch"):
        epoch_plan(lens[:7], seed=0, epoch=0, batch_size=4, world_size=2)


@pytest.fixture(scope="module")
def train_data(demo_build, tiny_assets):
    from model.config import load_train_config
    from model.motionllm import load_tokenizer, video_tower_geometry
    from tests.model.conftest import tiny_overrides

    cfg = load_train_config("configs/train/tiny_stage2.yaml", tiny_overrides(tiny_assets))
    tok, ids = load_tokenizer(cfg)
    stats = local_motion_stats(demo_build)
    return TrainData(local_tables(cfg, demo_build), cfg, stats, ids, tok.pad_token_id, video_tower_geometry(cfg)), tok


def test_batches_join_each_sample_with_its_own_motion_and_video(train_data, demo_build):
    data, tok = train_data
    rows = {r["sample_id"]: r for r in pads.dataset(str(demo_build / "instruction" / "train"), format="parquet").to_table().to_pylist()}
    motions = {r["motion_id"]: np.asarray(r["features"], np.float32)
               for r in pads.dataset(str(demo_build / "motion" / "train"), format="parquet").to_table().to_pylist()}  # fmt: skip
    assert len(data) == len(rows)  # every train conversation of the demo build is trainable
    picks = [data.sample_ids.index(s) for s in ("000000/motion+video/caption/0", "000000/caption/0", "000000/video/caption/0")]
    batch = data.collate(picks)
    m, v = tok.convert_tokens_to_ids([MOTION_TOKEN, VIDEO_TOKEN])
    assert batch["motion"].shape[0] == 2 and batch["frames"].shape == (2, 8, 3, 32, 32)
    n = motions["000000"].shape[0]
    assert batch["motion_lengths"].tolist() == [n, n]
    expected = (motions["000000"] - data.stats.mean) / data.stats.std
    np.testing.assert_allclose(batch["motion"][0, :n].numpy(), expected, rtol=1e-5, atol=1e-5)
    ids = batch["input_ids"]
    assert (ids[0] == m).sum() == n // 4 and (ids[0] == v).sum() == 8 * 4  # 8 frames × 4 patches of the tiny tower
    assert (ids[1] == m).sum() == n // 4 and (ids[1] == v).sum() == 0
    assert (ids[2] == m).sum() == 0 and (ids[2] == v).sum() == 32
    for b, sid in enumerate(("000000/motion+video/caption/0", "000000/caption/0", "000000/video/caption/0")):
        labelled = batch["labels"][b][batch["labels"][b] != IGNORE_INDEX].tolist()
        assert tok.decode(labelled[:-1]).strip() == rows[sid]["conversations"][1]["content"]
    assert batch["num_items"] == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert batch["attention_mask"].sum() == batch["num_tokens"]


def test_too_long_samples_are_skipped_and_counted(demo_build, tiny_assets):
    from model.config import load_train_config
    from model.motionllm import load_tokenizer, video_tower_geometry
    from tests.model.conftest import tiny_overrides

    cfg = load_train_config("configs/train/tiny_stage2.yaml", tiny_overrides(tiny_assets, "data.max_length=80"))
    tok, ids = load_tokenizer(cfg)
    data = TrainData(local_tables(cfg, demo_build), cfg, MotionStats(np.zeros(263), np.ones(263)), ids, 0,
                     video_tower_geometry(cfg))  # fmt: skip
    n_train = pads.dataset(str(demo_build / "instruction" / "train"), format="parquet").count_rows()
    assert data.dropped["too_long"] > 0 and len(data) + data.dropped["too_long"] == n_train
    assert data.seq_lens.max() <= 80
