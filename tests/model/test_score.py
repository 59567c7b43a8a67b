"""Scoring: normalisation, the offline judge, judge-output parsing, aggregation and bootstrap, the LLM
judge against the loopback server (cache: a rerun makes zero calls), and `movid score`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from model.score import (
    MOVID_BENCH_CATEGORIES,
    Judgement,
    JudgeParseError,
    OfflineJudge,
    OpenAIJudge,
    aggregate,
    bootstrap_ci,
    calibration_set,
    format_table,
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
    count_q, video_q = "How many times does the person jump?", "What does the person do in the video?"
    items = [
        {"answer": "Two times.", "prediction": "2 times"},  # normalised equal -> yes 5
        {"question": "Is anyone riding a bicycle in the video?", "answer": "No, there is no bicycle.",
         "prediction": "Yes, a bicycle."},  # yes/no contradicts -> no
        {"question": count_q, "answer": "3 times.", "prediction": "He jumps 4 times"},  # counts disagree -> no
        {"question": count_q, "answer": "3 times.", "prediction": "He jumps a lot"},  # the asked count left out -> no
        {"question": "Does the person jump?", "answer": "No.", "prediction": "no, not at all"},  # agreeing -> yes, >= 4
        # the old judge took these for right on word overlap: {walk, forward} . {walk, back} = 0.5; now "back"
        # after a travel verb is the direction backward, which contradicts forward: no, the score (3) capped at 1
        {"answer": "walk forward", "prediction": "walk back"},
        {"answer": "left arm raised", "prediction": "right leg"},  # another limb and side -> no 0
        {"answer": "anything", "prediction": ""},  # empty -> no 0
        # {they, turn, right, by, about, 90, degrees} . {they, turn, left} = 2 / (sqrt7 sqrt3) = 0.436 -> score
        # round(5 * 0.336 / 0.7) = round(2.4) = 2, capped at 1 by the contradiction
        {"answer": "They turn right by about 90 degrees.", "prediction": "They turn left."},
        {"answer": "The left arm.", "prediction": "left arm, not the right"},  # the right one denied -> agree
        # no structured fact: similarity decides. {person, waves, at, friend} . {someone, waves, to, friend} =
        # 2 / 4 = 0.5 -> yes, score round(5 * 0.4 / 0.7) = 3; . {person, sits, down} = 1 / (2 sqrt3) = 0.289 -> no,
        # score round(5 * 0.189 / 0.7) = 1
        {"question": video_q, "answer": "A person waves at a friend.", "prediction": "Someone waves to a friend."},
        {"question": video_q, "answer": "A person waves at a friend.", "prediction": "A person sits down."},
    ]  # fmt: skip
    js = j.judge_all(items)
    got = [(x.pred, x.score) for x in js]
    assert got[0] == ("yes", 5)
    assert got[1][0] == "no" and got[1][1] <= 1
    assert got[2][0] == "no" and js[2].reason.startswith("contradiction")
    assert got[3][0] == "no" and js[3].reason.startswith("omission") and got[3][1] <= 2
    assert got[4][0] == "yes" and got[4][1] >= 4
    assert got[5] == ("no", 1) and "backward" in js[5].reason
    assert got[6] == ("no", 0)
    assert got[7] == ("no", 0)
    assert got[8] == ("no", 1)
    assert got[9][0] == "yes" and got[9][1] >= 4
    assert got[10] == ("yes", 3) and js[10].reason.startswith("similarity")
    assert got[11] == ("no", 1)


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
    # all: yes 2 of 4 -> 0.5; score (5 + 1 + 4 + 0) / 4 = 2.5
    assert r["all"]["accuracy"] == 0.5 and r["all"]["score"] == 2.5 and r["all"]["n"] == 4
    # overall: the MoVid-Bench categories only (counting is reported apart): q0-q2, yes 2 of 3, score 10 / 3
    assert r["overall"]["accuracy"] == pytest.approx(2 / 3) and r["overall"]["n"] == 3
    assert r["overall"]["score"] == pytest.approx(10 / 3)
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
    assert r2["all"]["accuracy"] == pytest.approx(1.5 / 4) and r2["all"]["failed"] == 0
    three = [[J("yes", 5), J("no", 1), J("yes", 4), J(None, None)]]
    r3 = aggregate(rows, three, seed=0, n_boot=200)
    assert r3["all"]["n"] == 3 and r3["all"]["failed"] == 1 and r3["all"]["accuracy"] == pytest.approx(2 / 3)


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
    items = calibration_set(_rows(), n=4, seed=0)
    wrong = [i for i in items if i["expect"] == "no"]
    right = [i for i in items if i["expect"] == "yes"]
    # every reference states a fact, so each gives one contradiction and one paraphrase, none equal to it
    assert len(wrong) == 4 and len(right) == 4 and all(i["prediction"] != i["answer"] for i in items)
    assert {i["edit"] for i in wrong} <= {"direction", "in_place", "count", "number"}
    assert calibration_set(_rows(), n=4, seed=0) == items and calibration_set(_rows(), n=4, seed=1) != items


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
        # per repeat (distinct seeds): 4 questions + 4 contradicted and 4 paraphrased references
        assert first == 2 * (4 + 4 + 4)
        assert {b["seed"] for b in server.bodies} == {0, 1}
        assert all(b["response_format"]["type"] == "json_schema" for b in server.bodies)
        assert r["all"]["accuracy"] == 0.5 and r["all"]["n"] == 4
        assert r["overall"]["accuracy"] == pytest.approx(2 / 3) and r["overall"]["n"] == 3  # counting apart
        assert r["predictions"]["missing"] == 1
        assert r["by_category"]["counting"]["accuracy"] == 0.0  # q3 missing -> judged wrong
        assert r["judge"]["model"] == ["judge-model-served"]  # the id the endpoint answered with
        assert r["judge"]["variance"]["pred_agreement"] == 1.0 and r["judge"]["variance"]["accuracy_std"] == 0.0
        # the fake judge calls right only a verbatim reference: every contradiction wrong, every paraphrase
        # wrong too -> calibration fails, as it should for a judge that only matches strings
        assert r["calibration"]["contradictions"]["rate"] == 1.0 and r["calibration"]["paraphrases"]["rate"] == 0.0
        assert not r["calibration"]["ok"] and r["calibration"]["misjudged"][0]["expect"] == "yes"
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
    assert r["judge"]["failed"] == 4 and r["all"]["n"] == 0 and r["all"]["failed"] == 4
    assert r["judge"]["usage"]["reasks"] == 4
    assert "invalid_answer" in r["judge"]["failures"][0]["error"]
    assert r["calibration"] is None and "the judge was NOT checked" in format_table(r)


def test_cli_score_with_llm_judge(tmp_path, monkeypatch, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from movid.cli import main
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
    assert rc == 1  # the exact-match fake judge fails calibration: scores are written, the exit code says so
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["all"]["accuracy"] == 0.5 and s["all"]["n"] == 4 and s["overall"]["n"] == 3
    assert set(s["by_category"]) == {"direction", "counting"} and set(s["by_modality"]) == {"motion", "video"}
    assert len(s["overall"]["accuracy_ci"]) == 2 and s["calibration"]["ok"] is False
    assert s["categories"] == {"overall": list(MOVID_BENCH_CATEGORIES), "apart": ["counting"]}
    assert s["baselines"] == {}  # a bench file outside a build: no train split, no majority
    md = (tmp_path / "s.md").read_text()
    assert "| overall (5 MoVid-Bench categories) |" in md and "| category counting (apart) |" in md
    out = capsys.readouterr()
    assert "model % [95% CI]" in out.out and "majority: — (no train split found" in out.out
    assert "movid: calibration FAILED" in out.err


def test_cli_score_llm_judge_without_key(tmp_path, monkeypatch, capsys):
    from movid.cli import main

    monkeypatch.delenv("MOVID_NO_SUCH_KEY", raising=False)
    (tmp_path / "p.jsonl").write_text('{"question_id": "x", "prediction": "y"}\n')
    import pyarrow as pa
    import pyarrow.parquet as pq

    from schemas.bench import BENCH_SCHEMA

    pq.write_table(pa.Table.from_pylist([], schema=BENCH_SCHEMA), tmp_path / "b.parquet")
    rc = main(["score", "--bench", str(tmp_path / "b.parquet"), "--predictions", str(tmp_path / "p.jsonl"),
               "--judge", "openai", "--api-key-env", "MOVID_NO_SUCH_KEY"])  # fmt: skip
    assert rc == 2 and "MOVID_NO_SUCH_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_cli_score_predictions_without_the_columns_is_one_line(tmp_path, capsys, kind):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from movid.cli import main
    from schemas.bench import BENCH_SCHEMA

    pq.write_table(pa.Table.from_pylist([], schema=BENCH_SCHEMA), tmp_path / "b.parquet")
    preds = tmp_path / f"p.{kind}"
    if kind == "parquet":
        pq.write_table(pa.table({"question_id": ["x"], "answer": ["y"]}), preds)
    else:
        preds.write_text('{"question_id": "x", "answer": "y"}\n')
    assert main(["score", "--bench", str(tmp_path / "b.parquet"), "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "prediction" in err and "answer" in err  # what it lacks, what it has
