"""Baselines with every score: the majority answer per question template from the train split (fallbacks,
ties, modality), chance where the answer space is closed, reading the train QA of a real build, and `movid
score` showing model, blind and majority side by side."""

from __future__ import annotations

import json

import pytest

from model.baselines import chance, chance_table, find_build, majority_predictions, read_train_qa
from model.score import MOVID_BENCH_CATEGORIES
from schemas import vocabulary as V


def _qa(qid, question, answer, category, modality="motion"):
    return {"question_id": qid, "question": question, "answer": answer, "category": category, "modality": modality}


def test_majority_per_template_with_fallbacks():
    train = [
        _qa("t1", "How many times does the person jump?", "They jump two times.", "counting"),
        _qa("t2", "How many times does the person jump?", "They jump two times.", "counting"),
        # the same template (the event is a slot): these three outvote the two above
        _qa("t3", "How many times does the person crouch?", "They do not crouch.", "counting"),
        _qa("t4", "How many times does the person crouch?", "They do not crouch.", "counting"),
        _qa("t5", "How many times does the person squat?", "They do not crouch.", "counting"),
        # a tie between two answers: the one that sorts first
        _qa("t6", "Which body part moves most between 1.5 and 3 seconds?", "The right leg.", "body_part"),
        _qa("t7", "Which body part moves most between 0.5 and 2 seconds?", "The left arm.", "body_part"),
        # video questions keep their own majority
        _qa("t8", "How many times does the person jump?", "Once.", "counting", "video"),
        _qa("t9", "Does the person do a jump?", "No, that does not happen in this clip.", "hallucination"),
    ]
    bench = [
        _qa("b1", "How many times does the person jump?", "3 times.", "counting"),
        _qa("b2", "Which body part moves most between 2.25 and 4.5 seconds?", "The left leg.", "body_part"),
        _qa("b3", "How many times does the person hop?", "Twice.", "counting", "video"),
        _qa("b4", "Which limb is the busiest?", "The left leg.", "body_part"),  # template unseen: category's answer
        _qa("b5", "Is the person happy?", "Yes.", "mood"),  # category unseen too: the overall majority
    ]
    preds, info = majority_predictions(train, bench)
    assert V.question_template("How many times does the person squat?") == \
        V.question_template("How many times does the person jump?")  # fmt: skip
    assert preds["b1"] == "They do not crouch."  # 3 against 2 within the template
    assert preds["b2"] == "The left arm."  # 1 : 1, "The left arm." sorts first
    assert preds["b3"] == "Once."  # the video template, not the motion one
    assert preds["b4"] == "The left arm."  # (motion, body_part)'s majority
    assert preds["b5"] == "They do not crouch."  # 3 of 9, the most common train answer
    assert info["answered_by"] == {"template": 3, "modality/category": 1, "overall": 1}
    assert info["train_qa"] == 9 and majority_predictions(train, bench) == (preds, info)


@pytest.mark.parametrize("question,category,expected", [
    ("Does the person do a jump?", "hallucination", 1 / 2),
    ("True or false: the person raises the left hand above the head.", "hallucination", 1 / 2),
    ("Which way does the person travel? A) forward B) backward C) left D) right E) stays in place", "direction", 1 / 5),
    ("Which way does the person travel? A) forward B) backward C) stays in place", "direction", 1 / 3),
    ("In which direction does the person travel?", "direction", 1 / len(V.DIRECTIONS)),
    ("Does the person turn, and which way?", "direction", 1 / len(V.TURNS)),
    ("Which body part moves most between 1.5 and 3 seconds?", "body_part", 1 / len(V.BODY_PARTS)),
    ("Which comes first, the jump or the crouch?", "sequentiality", 1 / 2),
    ("What does the person do after the crouch?", "sequentiality", 1 / len(V.EVENTS)),
    ("How many times does the person jump?", "counting", None),
    ("What is the person most likely doing?", "reasoning", None),
])  # fmt: skip
def test_chance(question, category, expected):
    assert chance(question, category) == (pytest.approx(expected) if expected is not None else None)


def test_chance_table_means_over_defined_questions():
    bench = [_qa("a", "Does the person jump?", "No.", "hallucination"),
             _qa("b", "In which direction does the person travel?", "Forward.", "direction"),
             _qa("c", "What is the person most likely doing?", "Walking.", "reasoning"),
             _qa("d", "How many times does the person jump?", "Twice.", "counting")]  # fmt: skip
    t = chance_table(bench, MOVID_BENCH_CATEGORIES)
    assert t["overall"] == {"accuracy": pytest.approx((1 / 2 + 1 / 5) / 2), "defined": 2, "n": 3}
    assert t["all"]["n"] == 4 and t["all"]["defined"] == 2
    assert t["by_category"]["reasoning"] == {"accuracy": None, "defined": 0, "n": 1}
    assert t["by_modality_category"]["motion/direction"]["accuracy"] == pytest.approx(1 / 5)


def test_read_train_qa_refuses_paths_outside_the_build(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": [
        {"table": "instruction", "split": "train", "path": "../elsewhere/part-00000.parquet"}]}))  # fmt: skip
    with pytest.raises(ValueError, match="outside the build"):
        read_train_qa(tmp_path)
    assert find_build(tmp_path) == tmp_path and find_build(tmp_path / "bench" / "part-00000.parquet") == tmp_path
    assert find_build(tmp_path / "nowhere" / "deeper" / "x") is None


def test_cli_score_shows_model_blind_majority_and_chance(demo_build, tmp_path, capsys):
    from model.bench import read_bench
    from movid.cli import main

    train = read_train_qa(demo_build)
    bench = read_bench(demo_build / "bench")
    assert train and all(r["split"] == "train" for r in train)
    assert not {r["sample_id"] for r in train} & {r["sample_id"] for r in bench}
    refs, blind = tmp_path / "refs.jsonl", tmp_path / "blind.jsonl"
    refs.write_text("".join(json.dumps({"question_id": r["question_id"], "prediction": r["answer"]}) + "\n"
                            for r in bench))  # fmt: skip
    blind.write_text("".join(json.dumps({"question_id": r["question_id"], "prediction": "I cannot tell."}) + "\n"
                             for r in bench))  # fmt: skip
    rc = main(["score", "--bench", str(demo_build / "bench"), "--predictions", str(refs), "--baseline-predictions",
               f"blind={blind}", "--out", str(tmp_path / "s.json"), "--markdown", str(tmp_path / "s.md")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out  # the offline judge passes its calibration on the build's own bench
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["all"]["accuracy"] == 1.0 and s["all"]["n"] == len(bench)
    assert s["baselines"]["blind"]["all"]["accuracy"] == 0.0
    maj = s["baselines"]["majority"]
    assert maj["source"]["train_qa"] == len(train) and maj["all"]["n"] == len(bench)
    assert 0.0 < maj["all"]["accuracy"] < 1.0 and len(maj["overall"]["accuracy_ci"]) == 2
    assert set(maj["by_category"]) == set(s["by_category"])
    assert s["chance"]["overall"]["n"] == s["overall"]["n"]
    assert s["calibration"]["ok"] and s["calibration"]["contradictions"]["n"] > 0
    header = out.splitlines()[0]
    assert header.index("model %") < header.index("blind %") < header.index("majority %") < header.index("chance %")
    assert "| group | model % [95% CI] | blind % [95% CI] | majority % [95% CI] | chance % |" in \
        (tmp_path / "s.md").read_text()  # fmt: skip


def test_cli_score_rejects_a_bad_baseline_spec(demo_build, tmp_path, capsys):
    from movid.cli import main

    (tmp_path / "p.jsonl").write_text("")
    for spec in ("blind", "majority=x.jsonl", "=x.jsonl"):
        rc = main(["score", "--bench", str(demo_build / "bench"), "--predictions", str(tmp_path / "p.jsonl"),
                   "--baseline-predictions", spec])  # fmt: skip
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and err.startswith("movid: error: --baseline-predictions")
