"""``movid evaluate``: a trained checkpoint answers the build's bench and the answers are scored, beside the
blind twin's answers (``--blind RUN``), the majority baseline and chance."""

import json

from model.train import train
from movid.cli import main


def test_evaluate_answers_the_bench_and_scores_it(demo_build, tiny_config, tmp_path):
    cfg = tiny_config("tiny_stage1", "train.max_steps=3", "train.log_every=1", "train.save_every=3", video=False)
    train(cfg, demo_build, tmp_path / "run", executor="local", show_progress=False)
    out = tmp_path / "scores.json"
    # the run stands in for its own blind twin here: what is tested is that both answer and both are scored
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--bench", str(demo_build / "bench"),
               "--limit", "6", "--max-new-tokens", "8", "--quiet", "--out", str(out),
               "--predictions-out", str(tmp_path / "model.jsonl"), "--blind", str(tmp_path / "run")])  # fmt: skip
    lines = (tmp_path / "model.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(set(json.loads(ln)) == {"question_id", "prediction"} for ln in lines)
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == 6  # the blind answers
    scores = json.loads(out.read_text())
    assert scores["all"]["n"] == 6 and 0 <= scores["all"]["accuracy"] <= 1
    assert scores["predictions"]["missing"] == 0 and scores["calibration"]
    assert rc == (0 if scores["calibration"]["ok"] else 1)  # exit 1 only for a judge that fails calibration
    assert scores["baselines"]["blind"]["all"] == scores["all"]  # the same checkpoint, greedy: the same answers
    assert scores["baselines"]["majority"]["all"]["n"] == 6 and scores["chance"]["all"]["n"] == 6


def test_generate_with_an_unknown_motion_id_is_one_line_before_any_model_loads(demo_build, tmp_path, capsys):
    from movid.cli import main

    rc = main(["generate", "--checkpoint", str(tmp_path / "no_run"), "--data", str(demo_build),
               "--motion-id", "nope", "--question", "What does the person do?"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "no motion with motion_id 'nope'; it has " in err and "e.g. 000000, 000001" in err
