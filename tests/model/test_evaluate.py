"""``movid evaluate``: a trained checkpoint answers the build's bench and the answers are scored."""

import json

from model.train import train
from pipeline.cli import main


def test_evaluate_answers_the_bench_and_scores_it(demo_build, tiny_config, tmp_path):
    cfg = tiny_config("tiny_stage1", "train.max_steps=3", "train.log_every=1", "train.save_every=3", video=False)
    train(cfg, demo_build, tmp_path / "run", executor="local", show_progress=False)
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--bench", str(demo_build / "bench"),
                 "--limit", "6", "--max-new-tokens", "8", "--quiet", "--out", str(out)]) == 0  # fmt: skip
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(set(json.loads(ln)) == {"question_id", "prediction"} for ln in lines)
    scores = json.loads(out.read_text())
    assert scores["overall"]["n"] == 6 and 0 <= scores["overall"]["accuracy"] <= 1
    assert scores["predictions"]["missing"] == 0 and scores["calibration"]
