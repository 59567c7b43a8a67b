"""The one config loader (schemas/config_schema.py) as both configs use it, the README's config tables against
the dataclasses, and every packaged preset loading."""

import re
from pathlib import Path

import pytest

from configs import find_preset, package_dir
from model.config import TrainConfig, load_train_config
from pipeline.config import BuildConfig, load_config
from schemas.config_schema import ConfigError, field_keys

ROOT = Path(__file__).resolve().parents[2]


def _documented(section: str, next_section: str) -> set[str]:
    """Keys in the first column of the README tables between two headings; ``a.b.*`` stands for a section."""
    text = (ROOT / "README.md").read_text()
    text = text[text.index(section) : text.index(next_section)]
    keys = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            keys |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return keys


def _expand(documented: set[str], keys: list[str]) -> set[str]:
    out = set()
    for k in documented:
        out |= {f for f in keys if f.startswith(k[:-1])} if k.endswith(".*") else {k}
    return out


@pytest.mark.parametrize("cls, section, next_section", [
    (BuildConfig, "## Configuration", "## Real data"),
    (TrainConfig, "## Training", "## Benchmark"),
], ids=["build", "train"])  # fmt: skip
def test_readme_tables_list_exactly_the_fields(cls, section, next_section):
    keys = field_keys(cls)
    documented = _expand(_documented(section, next_section), keys)
    assert sorted(set(keys) - documented) == [], "config keys the README's table does not list"
    assert sorted(documented - set(keys)) == [], "README rows naming no config key"


def test_every_packaged_preset_loads():
    root = package_dir()
    presets = sorted(root.rglob("*.yaml"))
    assert {p.relative_to(root).as_posix() for p in presets} >= {"demo.yaml", "train/tiny_demo.yaml"}
    for preset in presets:
        if preset.parent.name == "train":
            cfg = load_train_config(preset)
            assert cfg.lm.path, preset
        else:
            assert load_config(preset).seed == 0, preset


def test_presets_by_name_and_by_checkout_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the packaged copies answer
    assert load_train_config("tiny_demo").train == load_train_config("configs/train/tiny_demo.yaml").train
    assert load_config("demo").plan.unit_size == load_config("configs/demo.yaml").plan.unit_size == 64
    assert find_preset("no_such_preset", "train") is None
    with pytest.raises(ConfigError, match="--config: 'no_such_preset' does not exist"):
        load_train_config("no_such_preset")


def test_both_configs_read_the_same_yaml_scalars():
    # YAML 1.1 reads 1e-3 as a string; a float field takes it as the number (both commands, file or --set)
    assert load_config(None, ["annotator.temperature=1e-3"]).annotator.temperature == 1e-3
    assert load_train_config("tiny_demo", ["optim.lr=2E-4"]).optim.lr == 2e-4
    assert load_config(None, ["annotator.model=1e-3"]).annotator.model == "1e-3"  # a string stays as written
    for bad in ("nan", ".inf", "1e999"):
        with pytest.raises(ConfigError, match=r"^optim\.lr: "):
            load_train_config("tiny_demo", [f"optim.lr={bad}"])
        with pytest.raises(ConfigError, match=r"^annotator\.temperature: "):
            load_config(None, [f"annotator.temperature={bad}"])


def test_train_numbers_have_the_builds_checks():
    with pytest.raises(ConfigError, match=r"^optim\.betas: must be >= 0, got -0\.9$"):
        load_train_config("tiny_demo", ["optim.betas=[-0.9, 0.999]"])
    with pytest.raises(ConfigError, match=r"^train\.seed: must be >= 0"):
        load_train_config("tiny_demo", ["train.seed=-1"])
    assert load_train_config("tiny_demo", ["video.select_layer=-1"]).video.select_layer == -1  # declared: any


def test_train_preset_gets_the_builds_file_checks(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 100 + "]" * 100)
    with pytest.raises(ConfigError, match=r"^--config '.*deep.yaml': nested more than 64 levels deep"):
        load_train_config(deep)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("stage: 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"^--config: '.*latin1.yaml' is not UTF-8 text"):
        load_train_config(latin1)
