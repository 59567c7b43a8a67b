"""Training in one process: a run stopped at a checkpoint and resumed continues with exactly the losses of
the uninterrupted run; stage 2 starts from stage 1; and the tiny model overfits eight captions so well that
greedy generation from its checkpoint reproduces each one (data, labels, template and splice line up)."""

import numpy as np
import pyarrow.dataset as pads
from safetensors.torch import load_file

from model.checkpoint import latest_checkpoint
from model.cli import main as cli
from model.train import read_metrics, train
from tests.model.conftest import OVERFIT_SAMPLES, tiny_overrides


def _train_args(assets, build, run, *extra):
    sets = tiny_overrides(assets, "train.max_steps=6", "train.batch_size=4", "train.grad_accum=2", "train.log_every=1",
                          "train.save_every=2", "train.keep_checkpoints=5", "data.loader_threads=1", *extra)  # fmt: skip
    return ["train", "--config", "configs/train/tiny_stage2.yaml", "--data", str(build), "--out", str(run),
            "--executor", "local", "--quiet"] + [a for s in sets for a in ("--set", s)]  # fmt: skip


def test_resumed_run_continues_with_the_uninterrupted_losses(demo_build, tiny_assets, tmp_path, capsys):
    # 24 samples (motion, video and motion+video; captions and QA), 3 optimizer steps per epoch: the stop at step 2
    # lands mid-epoch and the resumed run crosses into epoch 1. LoRA dropout, accumulation and loader threads on.
    ids = sorted(pads.dataset(str(demo_build / "instruction" / "train"), format="parquet").to_table(columns=["sample_id"])["sample_id"].to_pylist())[:24]
    subset = f"data.sample_ids=[{','.join(ids)}]"
    assert cli(_train_args(tiny_assets, demo_build, tmp_path / "whole", subset)) == 0
    assert cli(_train_args(tiny_assets, demo_build, tmp_path / "split", subset, "train.stop_at_step=2")) == 0
    assert latest_checkpoint(tmp_path / "split").name == "step-00000002"
    capsys.readouterr()
    assert cli(_train_args(tiny_assets, demo_build, tmp_path / "split", subset)) == 2  # would overwrite the run
    assert "add --resume" in capsys.readouterr().err
    assert cli(_train_args(tiny_assets, demo_build, tmp_path / "split", subset, "lm.lora.rank=4") + ["--resume"]) == 2
    assert "differs from the run's in lm.lora.rank" in capsys.readouterr().err
    assert cli(_train_args(tiny_assets, demo_build, tmp_path / "split", subset) + ["--resume"]) == 0

    whole, split = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "split")
    assert [r["step"] for r in whole] == [r["step"] for r in split] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in whole] == [0, 0, 1, 1, 1, 2]
    for a, b in zip(whole, split, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-6, (a["step"], a["loss"], b["loss"])
    final_a = load_file(latest_checkpoint(tmp_path / "whole") / "model.safetensors")
    final_b = load_file(latest_checkpoint(tmp_path / "split") / "model.safetensors")
    assert final_a.keys() == final_b.keys() and any("lora_A" in k for k in final_a)
    for k in final_a:
        assert np.array_equal(final_a[k].numpy(), final_b[k].numpy()), k


def test_stage2_starts_from_stage1_weights_and_stats(demo_build, tiny_config, tmp_path):
    stage1 = tiny_config("tiny_stage1", "train.max_steps=2", "train.save_every=2")
    train(stage1, demo_build, tmp_path / "s1", executor="local", show_progress=False)
    # projectors and motion encoder frozen in place (lr 0): stage 2 must end with stage 1's weights for them
    stage2 = tiny_config("tiny_stage2", "train.max_steps=1", f"train.init_from={tmp_path / 's1'}", "optim.lr_projector=0",
                         "optim.lr_motion_encoder=0", "optim.weight_decay=0")  # fmt: skip
    train(stage2, demo_build, tmp_path / "s2", executor="local", show_progress=False)
    w1 = load_file(latest_checkpoint(tmp_path / "s1") / "model.safetensors")
    w2 = load_file(latest_checkpoint(tmp_path / "s2") / "model.safetensors")
    assert set(w1) < set(w2) and any("lora_" in k for k in set(w2) - set(w1))
    for k in w1:
        assert np.array_equal(w1[k].numpy(), w2[k].numpy()), k
    s1, s2 = (np.load(tmp_path / r / "motion_stats.npz") for r in ("s1", "s2"))
    assert np.array_equal(s1["mean"], s2["mean"]) and np.array_equal(s1["std"], s2["std"])


def test_overfit_eight_captions_and_generate_them_back(demo_build, tiny_config, tmp_path, capsys):
    from model.generate import Answerer, fetch_motion

    steps = 100
    cfg = tiny_config("tiny_stage1", "lm.mode=full", "data.modalities=[motion]", f"data.sample_ids=[{','.join(OVERFIT_SAMPLES)}]",
                      "optim.lr=3e-3", "optim.warmup_ratio=0", "optim.schedule=constant", "optim.weight_decay=0",
                      "train.batch_size=8", f"train.max_steps={steps}", "train.log_every=10", f"train.save_every={steps}",
                      video=False)  # fmt: skip
    last = train(cfg, demo_build, tmp_path / "run", executor="local", show_progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "run")]
    assert last["step"] == steps and losses[-1] < 0.05 < losses[0]

    rows = {r["sample_id"]: r for r in pads.dataset(str(demo_build / "instruction" / "train"), format="parquet").to_table().to_pylist()}
    answerer = Answerer(tmp_path / "run", device="cpu")  # rebuilt from the run's config + checkpoint
    items, answers = [], []
    for sid in OVERFIT_SAMPLES:
        question, answer = (turn["content"] for turn in rows[sid]["conversations"])
        items.append((question, fetch_motion(demo_build, rows[sid]["motion_id"]), None))
        answers.append(answer)
        assert answerer.answer(*items[-1], max_new_tokens=40) == answer, sid
    # batched (left-padded prompts of different lengths, clips of different lengths): the same answers
    assert answerer.answer_many(items, max_new_tokens=40, batch_size=5) == answers
    # the same through the command line, for one of the mirrored pair that only the motion tells apart
    row = rows["M000003/caption/0"]
    capsys.readouterr()
    assert cli(["generate", "--checkpoint", str(tmp_path / "run"), "--data", str(demo_build), "--motion-id", row["motion_id"],
                "--question", "In one sentence, what does the person do?"]) == 0
    assert capsys.readouterr().out.strip() == row["conversations"][1]["content"] == "a man jumps up three times and turns left."
