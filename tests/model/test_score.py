"""Scoring: normalisation, the offline judge, judge-output parsing, aggregation and bootstrap, the LLM
judge against the loopback server (cache: a rerun makes zero calls), and `movid score`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from model.score import (
    Judgement,
    JudgeParseError,
    OfflineJudge,
    OpenAIJudge,
    aggregate,
    bootstrap_ci,
    calibration_set,
    normalize,
    numbers,
    parse_judge,
    score,
    yes_no,
)
from tests.llm_server import FakeLLM

KEY = "sk-test-judge"


def bag_encode(texts):
    """A stand-in for MiniLM: unit bag-of-words vectors of the normalised text (cosine = shared words)."""
    vocab = sorted({w for t in texts for w in normalize(t).split()})
    out = np.zeros((len(texts), max(1, len(vocab))))
    for i, t in enumerate(texts):
        for w in normalize(t).split():
            out[i, vocab.index(w)] += 1
    n = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(n == 0, 1, n)


def test_normalize():
    assert normalize("The person jumps Two times!") == "person jumps 2 times"
    assert normalize("They move forward about 2.74 m.") == "they move forward about 2.74 m"
    assert normalize("An arm, the LEFT one.") == "arm left 1"  # number words become digits
    assert yes_no("Yes, they do.") == "yes" and yes_no("No, there is no bicycle.") == "no"
    assert yes_no("Nope.") == "no" and yes_no("They walk.") is None
    assert numbers("twice, then 3.5 m") == [2.0, 3.5]


def test_offline_judge_rules():
    j = OfflineJudge(encode=bag_encode)
    items = [
        {"answer": "Two times.", "prediction": "2 times"},  # normalised equal -> yes 5
        {"answer": "No, there is no bicycle.", "prediction": "Yes, a bicycle."},  # yes/no contradicts -> no
        {"answer": "3 times.", "prediction": "He jumps 4 times"},  # numbers disagree -> no
        {"answer": "3 times.", "prediction": "He jumps a lot"},  # a count not stated -> no
        {"answer": "No.", "prediction": "no, not at all"},  # bare yes/no agreeing -> yes, >= 4
        # bag-of-words cosine: {walk, forward} . {walk, back} = 1 / (sqrt2 sqrt2) = 0.5 >= 0.5 -> yes;
        # score = round(5 * (0.5 - 0.1) / 0.7) = round(2.857) = 3
        {"answer": "walk forward", "prediction": "walk back"},
        # {left, arm, raised} . {right, leg} = 0 -> no; score = round(5 * max(0, -0.1 / 0.7)) = 0
        {"answer": "left arm raised", "prediction": "right leg"},
        {"answer": "anything", "prediction": ""},  # empty -> no 0
        {"answer": "They turn right by about 90 degrees.", "prediction": "They turn left."},  # opposite -> no
        {"answer": "The left arm.", "prediction": "left arm, not the right"},  # names both, the right one first -> rules pass
    ]
    got = [(x.pred, x.score) for x in j.judge_all(items)]
    assert got[0] == ("yes", 5)
    assert got[1][0] == "no" and got[1][1] <= 1
    assert got[2][0] == "no" and got[3][0] == "no"
    assert got[4][0] == "yes" and got[4][1] >= 4
    assert got[5] == ("yes", 3)
    assert got[6] == ("no", 0)
    assert got[7] == ("no", 0)
    # {they, turn, right, by, about, 90, degrees} . {they, turn, left} = 2 / (sqrt7 sqrt3) = 0.436 -> score
    # round(5 * 0.336 / 0.7) = round(2.4) = 2, capped at 1 by the contradiction
    assert got[8] == ("no", 1)
    assert got[9][0] == "yes"  # {left, arm} . {left, arm, not, right} = 2 / (sqrt2 * 2) = 0.707 >= 0.5


@pytest.mark.parametrize("text,expected", [
    ('{"pred": "yes", "score": 4}', {"pred": "yes", "score": 4}),
    ('```json\n{"pred": "no", "score": 1}\n```', {"pred": "no", "score": 1}),
    ("{'pred': 'Yes', 'score': '5'}", {"pred": "yes", "score": 5}),  # Python literal, case, score as text
    ('{"PRED": "no.", "score": 0.0}', {"pred": "no", "score": 0}),
])  # fmt: skip
def test_parse_judge_accepts(text, expected):
    assert parse_judge(text) == expected


@pytest.mark.parametrize("text", [
    "Sure! Here is my evaluation: yes",  # not JSON
    '{"pred": "yes", "score": 4',  # truncated
    '{"pred": "maybe", "score": 3}',  # pred not yes/no
    '{"pred": "yes", "score": 7}',  # out of range
    '{"pred": "yes", "score": 2.5}',  # not an integer
    '{"pred": "yes"}',  # no score
    '["yes", 4]',  # not an object
])  # fmt: skip
def test_parse_judge_rejects(text):
    with pytest.raises(JudgeParseError):
        parse_judge(text)


def _rows():
    return [{"question_id": f"q{i}", "category": c, "modality": m, "question": f"Q{i}?", "answer": a}
            for i, (c, m, a) in enumerate([("direction", "motion", "Forward."), ("direction", "motion", "Left."),
                                           ("direction", "video", "Right."), ("counting", "motion", "3 times.")])]


def test_aggregate_per_category_and_modality():
    rows = _rows()
    J = Judgement
    one = [[J("yes", 5), J("no", 1), J("yes", 4), J("no", 0)]]
    r = aggregate(rows, one, seed=0, n_boot=200)
    # overall: yes 2 of 4 -> 0.5; score (5 + 1 + 4 + 0) / 4 = 2.5
    assert r["overall"]["accuracy"] == 0.5 and r["overall"]["score"] == 2.5 and r["overall"]["n"] == 4
    # direction: yes, no, yes -> 2/3; score 10/3.  counting: 0, 0
    assert r["by_category"]["direction"]["accuracy"] == pytest.approx(2 / 3)
    assert r["by_category"]["direction"]["score"] == pytest.approx(10 / 3)
    assert r["by_category"]["counting"]["accuracy"] == 0.0
    # motion: q0 yes, q1 no, q3 no -> 1/3; video: q2 yes -> 1
    assert r["by_modality"]["motion"]["accuracy"] == pytest.approx(1 / 3) and r["by_modality"]["video"]["accuracy"] == 1.0
    assert r["by_modality_category"]["motion/direction"]["accuracy"] == 0.5
    # two repeats, q1 judged yes once and failed once -> its only valid judgement counts;
    # q3 failed both times -> left out of n and counted as failed
    two = [one[0], [J("yes", 5), J(None, None, error="invalid"), J("no", 2), J(None, None)]]
    r2 = aggregate(rows, [two[0], two[1]], seed=0, n_boot=200)
    # per question yes share: q0 1, q1 0 (repeat 0 only), q2 0.5, q3 0 (repeat 0 only) -> mean 1.5/4
    assert r2["overall"]["accuracy"] == pytest.approx(1.5 / 4) and r2["overall"]["failed"] == 0
    three = [[J("yes", 5), J("no", 1), J("yes", 4), J(None, None)]]
    r3 = aggregate(rows, three, seed=0, n_boot=200)
    assert r3["overall"]["n"] == 3 and r3["overall"]["failed"] == 1 and r3["overall"]["accuracy"] == pytest.approx(2 / 3)


def test_bootstrap_is_deterministic():
    v = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 0.05, 0.6, 0.4]  # mean 0.455
    a, b, c = bootstrap_ci(v, seed=0), bootstrap_ci(v, seed=0), bootstrap_ci(v, seed=1)
    assert a == b and a != c
    assert 0.05 <= a[0] < 0.455 < a[1] <= 0.9
    assert bootstrap_ci([3, 3, 3]) == (3.0, 3.0)
    assert all(math.isnan(x) for x in bootstrap_ci([]))
    r1 = aggregate(_rows(), [[Judgement("yes", 5), Judgement("no", 1), Judgement("yes", 4), Judgement("no", 0)]])
    r2 = aggregate(_rows(), [[Judgement("yes", 5), Judgement("no", 1), Judgement("yes", 4), Judgement("no", 0)]])
    assert r1 == r2


def test_calibration_set():
    items = calibration_set(_rows(), n=2, seed=0)
    correct = [i for i in items if i["expect"] == "yes"]
    wrong = [i for i in items if i["expect"] == "no"]
    assert len(correct) == 2 and all(i["prediction"] == i["answer"] for i in correct)
    assert len(wrong) == 2 and all(i["prediction"] != i["answer"] for i in wrong)


def _preds(rows):
    # q0, q2: the reference (judged yes by the fake judge); q1: wrong; q3: missing
    return {"q0": rows[0]["answer"], "q1": "Backward.", "q2": rows[2]["answer"]}


def test_llm_judge_against_loopback_server(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVID_TEST_KEY", KEY)
    rows = _rows()
    with FakeLLM() as server:
        judge = OpenAIJudge(model="judge-model", base_url=server.base_url, api_key_env="MOVID_TEST_KEY",
                            cache_dir=tmp_path / "cache")  # fmt: skip
        r = score(rows, _preds(rows), judge, repeats=2, seed=0, calibration=4, n_boot=200)
        first = server.requests
        # per repeat (distinct seeds): 4 questions + 4 correct + 4 wrong calibration items, less the 2
        # correct-calibration prompts identical to q0's and q2's (prediction = reference), asked once
        assert first == 2 * (4 + 4 + 4 - 2)
        assert {b["seed"] for b in server.bodies} == {0, 1}
        assert all(b["response_format"]["type"] == "json_schema" for b in server.bodies)
        assert r["overall"]["accuracy"] == 0.5 and r["overall"]["n"] == 4
        assert r["predictions"]["missing"] == 1
        assert r["by_category"]["counting"]["accuracy"] == 0.0  # q3 missing -> judged wrong
        assert r["judge"]["model"] == ["judge-model-served"]  # the id the endpoint answered with
        assert r["judge"]["variance"]["pred_agreement"] == 1.0 and r["judge"]["variance"]["accuracy_std"] == 0.0
        assert r["calibration"]["ok"] and r["calibration"]["correct"]["agree"] == 1.0
        assert r["calibration"]["wrong"]["agree"] == 1.0
        again = score(rows, _preds(rows), judge, repeats=2, seed=0, calibration=4, n_boot=200)
        assert server.requests == first  # everything came from the response cache
        assert again["judge"]["usage"]["cache_hits"] > 0
        assert again["overall"] == r["overall"]


def test_llm_judge_malformed_answers_are_reasked_then_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVID_TEST_KEY", KEY)
    rows = _rows()
    with FakeLLM(p_malformed=1.0) as server:
        judge = OpenAIJudge(model="judge-model", base_url=server.base_url, api_key_env="MOVID_TEST_KEY",
                            cache_dir=tmp_path / "cache")  # fmt: skip
        r = score(rows, _preds(rows), judge, calibration=0, n_boot=100)
        assert server.requests == 2 * 4  # each question: the answer and one re-ask
    assert r["judge"]["failed"] == 4 and r["overall"]["n"] == 0 and r["overall"]["failed"] == 4
    assert r["judge"]["usage"]["reasks"] == 4
    assert "invalid_answer" in r["judge"]["failures"][0]["error"]


def test_cli_score_with_llm_judge(tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.cli import main
    from schemas.bench import BENCH_SCHEMA

    monkeypatch.setenv("MOVID_TEST_KEY", KEY)
    rows = [{**r, "sample_id": r["question_id"], "motion_id": "m", "video_id": None, "split": "test"} for r in _rows()]
    (tmp_path / "bench").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=BENCH_SCHEMA), tmp_path / "bench" / "part-00000.parquet")
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"question_id": k, "prediction": v}) + "\n" for k, v in _preds(rows).items()))
    with FakeLLM() as server:
        rc = main(["score", "--bench", str(tmp_path / "bench"), "--predictions", str(preds), "--judge", "openai",
                   "--model", "judge-model", "--base-url", server.base_url, "--api-key-env", "MOVID_TEST_KEY",
                   "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "s.json"),
                   "--markdown", str(tmp_path / "s.md"), "--calibration", "2"])  # fmt: skip
    assert rc == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["overall"]["accuracy"] == 0.5 and s["overall"]["n"] == 4
    assert set(s["by_category"]) == {"direction", "counting"} and set(s["by_modality"]) == {"motion", "video"}
    assert len(s["overall"]["accuracy_ci"]) == 2 and s["calibration"]["ok"]
    assert "| overall |" in (tmp_path / "s.md").read_text()
    assert "accuracy" in capsys.readouterr().out


def test_cli_score_llm_judge_without_key(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.delenv("MOVID_NO_SUCH_KEY", raising=False)
    (tmp_path / "p.jsonl").write_text('{"question_id": "x", "prediction": "y"}\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.bench import BENCH_SCHEMA

    pq.write_table(pa.Table.from_pylist([], schema=BENCH_SCHEMA), tmp_path / "b.parquet")
    rc = main(["score", "--bench", str(tmp_path / "b.parquet"), "--predictions", str(tmp_path / "p.jsonl"),
               "--judge", "openai", "--api-key-env", "MOVID_NO_SUCH_KEY"])  # fmt: skip
    assert rc == 2 and "MOVID_NO_SUCH_KEY" in capsys.readouterr().err
