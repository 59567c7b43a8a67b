from pathlib import Path

import pytest

from pipeline.config import ConfigError, config_hash, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_defaults_are_valid():
    cfg = load_config()
    assert cfg.executor == "ray" and cfg.ingest.min_frames == 40 and cfg.ingest.max_frames == 196


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_preset_loads(path):
    load_config(path)


def test_set_overrides_parse_types(tmp_path):
    cfg = load_config(None, ["shard.max_rows=7", "ingest.fps=30", "ingest.subclips=false", "ray.address=auto",
                             "seed=5"])  # fmt: skip
    assert (cfg.shard.max_rows, cfg.ingest.fps, cfg.ingest.subclips, cfg.ray.address, cfg.seed) == (
        7, 30.0, False, "auto", 5)  # fmt: skip


def test_yaml_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("shard:\n  max_rows: 10\nplan:\n  unit_size: 3\n")
    cfg = load_config(f, ["shard.max_rows=11"])
    assert (cfg.shard.max_rows, cfg.plan.unit_size) == (11, 3)


@pytest.mark.parametrize(
    "override,message",
    [
        ("shard.max_row=3", "shard.max_row: unknown config key"),
        ("nonsense=1", "nonsense: unknown config key"),
        ("shard.max_rows=many", "shard.max_rows: expected an integer"),
        ("ingest.subclips=maybe", "ingest.subclips: expected true or false"),
        ("shard.max_rows=0", "shard.max_rows: must be >= 1"),
        ("executor=dask", "executor: must be 'ray' or 'local'"),
        ("ingest.min_frames=300", "ingest.min_frames/ingest.max_frames"),
    ],
)
def test_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, [override])


def test_source_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        load_config(None, [], [f"humanml3d={tmp_path / 'nope'}"])
    with pytest.raises(ConfigError, match="expected KIND=PATH"):
        load_config(None, [], ["humanml3d"])
    with pytest.raises(ConfigError, match="unknown source kind 'webcam'"):
        load_config(None, [], [f"webcam={tmp_path}"])
    with pytest.raises(ConfigError, match="video.metadata: .*metadata.jsonl' does not exist"):
        load_config(None, [], [f"video={tmp_path}"])
    with pytest.raises(ConfigError, match="--config: .* does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_hash_ignores_where_it_runs(tmp_path):
    a = load_config(None, ["executor=local"], [f"humanml3d={tmp_path}"])
    b = load_config(None, ["executor=ray", "ray.num_cpus=1"], [f"humanml3d={tmp_path}"])
    c = load_config(None, ["shard.max_rows=3"], [f"humanml3d={tmp_path}"])
    assert config_hash(a) == config_hash(b) != config_hash(c)


def _numeric_keys(node=None, prefix=""):
    """Every int/float key of the config tree (introspected, so a key added later is covered too)."""
    import dataclasses
    import typing

    from pipeline.config import BuildConfig

    cls = node or BuildConfig
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        if dataclasses.is_dataclass(args[0]):
            yield from _numeric_keys(args[0], f"{prefix}{f.name}.")
        elif args[0] in (int, float):
            yield f"{prefix}{f.name}", args[0]


NUMERIC_KEYS = list(_numeric_keys())


@pytest.mark.parametrize("key,tp", NUMERIC_KEYS, ids=[k for k, _ in NUMERIC_KEYS])
def test_every_number_is_checked_on_load(key, tp):
    bad = ["-1"] + ([".nan", ".inf", "-.inf"] if tp is float else [])
    for value in bad:
        with pytest.raises(ConfigError, match=f"^{key.replace('.', '[.]')}: must be"):
            load_config(None, [f"{key}={value}"])


def test_upper_bounds_and_safe_yaml(tmp_path):
    with pytest.raises(ConfigError, match="frames.short_side: must be <= 4096, got 1000000"):
        load_config(None, ["frames.short_side=1000000"])
    with pytest.raises(ConfigError, match="--set seed: not valid YAML"):
        load_config(None, ["seed=!!python/name:os.system"])
    deep = tmp_path / "deep.yaml"
    deep.write_text("seed: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested"):
        load_config(deep)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("seed: 1 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(latin1)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfseed: 3\n")
    assert load_config(bom).seed == 3
