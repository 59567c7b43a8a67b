"""The blind twin (``motion.blind`` / ``video.blind``): the model gets zeroed inputs of the same length, so it
learns nothing from the motion or video, in training and in generation alike (its checkpoint's config says so);
and the trainer's CPU threads (``train.cpu_threads``)."""

import numpy as np
import pytest
import torch
import yaml

from model.checkpoint import latest_checkpoint
from model.config import ConfigError
from model.data import TrainData, local_motion_stats, local_tables
from model.motionllm import build_model, load_tokenizer, video_tower_geometry
from model.train import train


def _batch(cfg, demo_build, n=4):
    """A collated batch of motion+video samples, and a copy whose motions and frames are other data of the same
    shapes (permuted rows, noise): what a model that sees its inputs must tell apart."""
    tok, ids = load_tokenizer(cfg)
    data = TrainData(local_tables(cfg, demo_build), cfg, local_motion_stats(demo_build), ids, tok.pad_token_id,
                     video_tower_geometry(cfg))  # fmt: skip
    picks = [i for i, r in enumerate(data.rows) if r[2] >= 0 and r[3] >= 0][:n]
    assert picks
    batch = data.collate(picks)
    other = dict(batch)
    g = torch.Generator().manual_seed(0)
    other["motion"] = batch["motion"].flip(1) + torch.randn(batch["motion"].shape, generator=g)
    other["frames"] = torch.randn(batch["frames"].shape, generator=g)
    return batch, other


def _loss(model, batch):
    keys = ("input_ids", "labels", "attention_mask", "motion", "motion_lengths", "frames")
    with torch.no_grad():
        loss, _ = model(**{k: batch[k] for k in keys})
    return float(loss)


@pytest.mark.parametrize("blind", [False, True])
def test_a_blind_model_gets_nothing_from_motion_or_video(demo_build, tiny_config, blind):
    sets = [f"motion.blind={str(blind).lower()}", f"video.blind={str(blind).lower()}", "data.modalities=[motion+video]"]
    cfg = tiny_config("tiny_stage2", *sets)
    batch, other = _batch(cfg, demo_build)
    model, _ = build_model(cfg)
    model.eval()
    a, b = _loss(model, batch), _loss(model, other)
    if blind:
        assert a == b  # bit for bit: the inputs are replaced by zeros before the encoders see them
    else:
        assert abs(a - b) > 1e-4
    # the length is kept: as many motion tokens in the sequence either way
    assert int((batch["input_ids"] == model.motion_token_id).sum()) > 0


def test_blind_twin_trains_and_generates_blind(demo_build, tiny_config, tmp_path):
    from model.generate import Answerer, fetch_motion

    cfg = tiny_config("tiny_stage2", "motion.blind=true", "train.max_steps=2", "train.save_every=2", video=False)
    train(cfg, demo_build, tmp_path / "blind", executor="local", show_progress=False)
    saved = yaml.safe_load((latest_checkpoint(tmp_path / "blind") / "config.yaml").read_text())
    assert saved["motion"]["blind"] is True and saved["video"]["blind"] is False
    assert torch.get_num_threads() == 1  # train.cpu_threads' default on CPU

    answerer = Answerer(tmp_path / "blind", device="cpu")
    assert answerer.model.motion_blind
    motion = fetch_motion(demo_build, "000000")
    noise = np.random.default_rng(0).normal(size=motion.shape).astype(np.float32) * 5
    q = "Which way does the person travel?"
    assert answerer.answer(q, motion, max_new_tokens=12) == answerer.answer(q, noise, max_new_tokens=12)
    # the run's own config can be overridden: the same checkpoint with the motion switched back on sees it
    seeing = Answerer(tmp_path / "blind", ["motion.blind=false"], device="cpu")
    assert not seeing.model.motion_blind


def test_cpu_threads_setting(tiny_config):
    from model.train import set_cpu_threads

    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_cpu_threads(0, local_workers=1) == max(1, __import__("os").cpu_count() or 1)
        assert set_cpu_threads(0, local_workers=10**6) == 1  # more workers than cores: one thread each
    finally:
        torch.set_num_threads(before)
    assert tiny_config("tiny_stage2").train.cpu_threads == 1
    with pytest.raises(ConfigError, match=r"train.cpu_threads: must be >= 0"):
        tiny_config("tiny_stage2", "train.cpu_threads=-1")
