"""Red team, config: NaN, infinities, negatives and zeros where they mean nothing, absurd sizes, Python YAML
tags through ``--set``, and ``--config`` files that are not UTF-8, nested 5,000 deep, a list, or an alias
bomb — each refused before any work with exit 2 and one ``movid: error:`` line naming the key, no traceback,
and no ``OUT`` created.

In-process (``cli_inproc``: ``main`` must return the code, not raise), except the cases whose failure used to
be a traceback, which run in a fresh process as a user would.
"""

from __future__ import annotations

import pytest

from tests.redteam.harness import assert_one_line_error, cli, cli_inproc

# --set KEY=VALUE → the key the one error line must name
BAD_SETS = [
    ("ingest.fps", ".nan"), ("ingest.fps", ".inf"), ("ingest.fps", "1.0e+999"), ("ingest.fps", "0"),
    ("ingest.fps", "-20"), ("seed", "-1"), ("seed", "9223372036854775808"), ("align.tolerance_seconds", "-0.5"),
    ("align.tolerance_seconds", ".nan"), ("annotator.max_tokens", "0"), ("annotator.max_tokens", "-5"),
    ("annotator.timeout_s", "0"), ("annotator.timeout_s", "-.inf"), ("annotator.budget_usd", "-1"),
    ("annotator.budget_usd", ".nan"), ("annotator.requests_per_minute", "0"), ("annotator.tokens_per_minute", "-100"),
    ("annotator.backoff_base_s", "-1"), ("annotator.backoff_max_s", ".inf"), ("annotator.max_retries", "-1"),
    ("annotator.price_per_1k_prompt_tokens", "-0.01"), ("annotator.price_per_1k_completion_tokens", ".nan"),
    ("annotator.temperature", "5"), ("annotator.qa_per_clip", "0"), ("annotator.max_in_flight", "0"),
    ("frames.short_side", "1000000"), ("frames.short_side", "8"), ("frames.num_frames", "0"),
    ("frames.num_frames", "100000"), ("frames.sample_fps", "0"), ("frames.jpeg_quality", "101"),
    ("frames.max_pixels", "0"), ("frames.max_video_frames", "-1"), ("frames.max_video_seconds", "-1"),
    ("validation.plausibility.max_joint_speed_m_s", "-1"), ("validation.plausibility.max_foot_skate_ratio", "1.5"),
    ("validation.plausibility.contact_height_m", ".nan"), ("shard.max_rows", "0"), ("shard.row_group_rows", "-1"),
    ("plan.unit_size", "0"), ("ingest.max_caption_chars", "0"), ("ingest.max_captions", "-1"),
    ("ingest.max_file_frames", "-1"), ("ingest.max_text_bytes", "0"), ("ingest.min_frames", "0"), ("ray.max_retries", "-1"),
    ("ray.num_cpus", "0"), ("ray.object_store_memory", "-1"), ("bench.motion.body_part", "-3"), ("bench.seed", "-1"),
    ("motionx.fps", "0"), ("video.smpl_fps", "-30"), ("smpl.num_betas", "0"), ("ingest.allowed_roots", "notalist"),
]  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return tmp_path_factory.mktemp("rt_config_src")


def _build(source, out, *extra):
    return cli_inproc("build", "--out", out, "--executor", "local", "--quiet", "--source", f"humanml3d={source}", *extra)


@pytest.mark.parametrize("key,value", BAD_SETS, ids=[f"{k}={v}" for k, v in BAD_SETS])
def test_bad_value_names_its_key(source, tmp_path, key, value):
    out = tmp_path / "out"
    assert_one_line_error(_build(source, out, "--set", f"{key}={value}"), f"{key}:")
    assert not out.exists()


@pytest.mark.parametrize("value", ['!!python/object/apply:os.system ["echo pwned"]', "!!python/name:os.system",
                                   "1" * 5000], ids=["python_object_tag", "python_name_tag", "5000_digit_int"])  # fmt: skip
def test_set_goes_through_the_safe_loader(source, tmp_path, value):
    res = cli("build", "--out", tmp_path / "out", "--executor", "local", "--source", f"humanml3d={source}",
              "--set", f"seed={value}")  # fmt: skip
    line = assert_one_line_error(res, "--set seed")
    assert "pwned" not in res.stdout and len(line) < 400


CONFIG_FILES = {
    "not_utf8": (b"seed: 1\nshard:\n  max_rows: \xff\xfe\n", ["--config", "not UTF-8"]),
    "nested_5000": (b"seed: " + b"[" * 5000 + b"]" * 5000 + b"\n", ["--config", "nested"]),
    "nested_5000_maps": (b"".join(b"  " * k + b"k:\n" for k in range(5000)) + b"  " * 5000 + b"1\n", ["--config"]),
    "a_list": (b"- seed: 1\n- shard: {}\n", ["--config", "mapping"]),
    "python_tag": (b"seed: !!python/object/apply:os.system [echo pwned]\n", ["--config", "not valid YAML"]),
    "nul_bytes": (b"seed: 1\x00\n", ["--config", "not valid YAML"]),
    "alias_bomb": (b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                   b"seed: *f\n", ["unknown config key"]),  # fmt: skip
    "escape_in_key": (b'"\\e[2J\\e[H": 1\n', ["unknown config key"]),
}


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_hostile_config_file(source, tmp_path, name):
    data, needles = CONFIG_FILES[name]
    config = tmp_path / "config.yaml"
    config.write_bytes(data)
    res = cli("build", "--out", tmp_path / "out", "--executor", "local", "--config", config,
              "--source", f"humanml3d={source}", timeout=60)  # fmt: skip
    assert_one_line_error(res, *needles)
    assert "\x1b" not in res.stderr and "pwned" not in res.stdout
    assert not (tmp_path / "out").exists()


def test_a_config_folder_is_not_a_config(source, tmp_path):
    assert_one_line_error(_build(source, tmp_path / "out", "--config", tmp_path), "--config", "does not exist")


def test_good_values_at_their_bounds_are_accepted(source, tmp_path):
    from pipeline.config import load_config

    cfg = load_config(None, ["seed=0", "align.tolerance_seconds=0", "annotator.temperature=2", "frames.short_side=4096",
                             "frames.jpeg_quality=1", "annotator.budget_usd=0", "ingest.allowed_roots=[]"],
                      [f"humanml3d={source}"])  # fmt: skip
    assert cfg.frames.short_side == 4096 and cfg.ingest.allowed_roots == ()
