"""The bench table: QA pairs of the test split only, quotas scaled to what is available, deterministic."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from model.bench import read_bench
from pipeline.bench import BenchLeakError, bench_rows, check_no_leak, commit_bench, select
from pipeline.config import BenchConfig, BenchQuotas, BuildConfig, VideoBenchQuotas
from schemas import check_conforms
from schemas.bench import MOVID_BENCH_CATEGORIES, qa_pairs


def _row(sid, category, split="test", modality="motion", pairs=1, motion_id=None, video_id=None):
    turns = []
    for k in range(pairs):
        ph = "<motion>\n" if modality == "motion" else "<video>\n"
        turns += [{"role": "user", "content": (ph if k == 0 else "") + f"Q{k} of {sid}?"},
                  {"role": "assistant", "content": f"A{k} of {sid}."}]
    return {"sample_id": sid, "modality": modality, "task": "qa", "category": category, "split": split,
            "motion_id": motion_id if motion_id is not None else (sid.split("/")[0] if modality == "motion" else None),
            "video_id": video_id if video_id is not None else (sid.split("/")[0] if modality == "video" else None),
            "conversations": turns}


def test_qa_pairs_ids_and_placeholders():
    pairs = qa_pairs(_row("000001/qa/0", "direction", pairs=2) | {"facts": '{"direction":"left"}'})
    assert [p["question_id"] for p in pairs] == ["000001/qa/0#0", "000001/qa/0#1"]
    assert pairs[0]["question"] == "Q0 of 000001/qa/0?"  # "<motion>\n" removed
    assert pairs[1]["answer"] == "A1 of 000001/qa/0."
    assert pairs[0]["category"] == "direction" and pairs[0]["modality"] == "motion"
    assert pairs[0]["facts"] is None  # a row's facts belong to its single pair: two pairs, so none is given
    (single,) = qa_pairs(_row("000002/qa/0", "direction") | {"facts": '{"direction":"left"}'})
    assert single["facts"] == '{"direction":"left"}'


def test_quotas_scale_to_available():
    # quotas a:4 b:2 c:2 (total 8); available a:3 b:10 c:1 (total 14 >= 8) -> s = 1:
    # targets 4, 2, 2 capped by availability -> 3, 2, 1
    cands = [{"question_id": f"{c}{i}", "modality": "motion", "category": c}
             for c, n in (("a", 3), ("b", 10), ("c", 1)) for i in range(n)]
    rows, stats = select(cands, {"motion": {"a": 4, "b": 2, "c": 2, "d": 0}}, seed=0)
    assert {c: s["chosen"] for c, s in stats["motion"].items()} == {"a": 3, "b": 2, "c": 1}
    assert "d" not in stats["motion"]  # a zero quota leaves the category out
    # fewer available than the quotas' total: quotas 20/10/10 (40), available 10 -> s = 10/40 = 0.25 ->
    # targets round(5) = 5, round(2.5) = 2 (banker's), round(2.5) = 2; availability 4/3/3 caps a at 4
    cands = [{"question_id": f"{c}{i}", "modality": "motion", "category": c}
             for c, n in (("a", 4), ("b", 3), ("c", 3)) for i in range(n)]
    rows, stats = select(cands, {"motion": {"a": 20, "b": 10, "c": 10}}, seed=0)
    assert {c: (s["target"], s["chosen"]) for c, s in stats["motion"].items()} == {"a": (5, 4), "b": (2, 2), "c": (2, 2)}
    assert len(rows) == 8
    # a category with a quota but no questions (counting on a bench without any) does not shrink the others
    rows, stats = select(cands, {"motion": {"a": 4, "b": 3, "c": 3, "counting": 100}}, seed=0)
    assert {c: s["chosen"] for c, s in stats["motion"].items()} == {"a": 4, "b": 3, "c": 3, "counting": 0}


def test_selection_is_deterministic_and_order_free():
    cands = [{"question_id": f"q{i:03d}", "modality": "motion", "category": "a"} for i in range(50)]
    a, _ = select(cands, {"motion": {"a": 10}}, seed=1)
    shuffled = cands[:]
    random.Random(5).shuffle(shuffled)
    b, _ = select(shuffled, {"motion": {"a": 10}}, seed=1)
    c, _ = select(cands, {"motion": {"a": 10}}, seed=2)
    assert a == b and len(a) == 10
    assert a != c  # another seed picks other questions
    assert [r["question_id"] for r in a] == sorted(r["question_id"] for r in a)


def test_only_test_split_and_leak_check():
    cfg = BenchConfig(motion=BenchQuotas(0, 0, 5, 5, 0, counting=0), video=VideoBenchQuotas(0, 0, 0, 5, 0, counting=0))
    rows = [_row("000001/qa/0", "direction"), _row("000002/qa/0", "direction", split="train"),
            _row("000003/qa/0", "reasoning", split="val"), _row("000004/video-qa/0", "reasoning", modality="video"),
            _row("000005/qa/0", "counting"),  # no quota -> not in the bench
            {**_row("000006/cap", "direction"), "task": "caption"}]  # fmt: skip
    bench, stats = bench_rows(rows, cfg, 0, video_motion={"000004": "000004"})
    assert [r["question_id"] for r in bench] == ["000001/qa/0#0", "000004/video-qa/0#0"]
    assert all(r["split"] == "test" for r in bench)
    assert bench[1]["motion_id"] == "000004"  # a video's linked motion is filled in
    with pytest.raises(BenchLeakError, match="split 'train'"):
        check_no_leak([{**bench[0], "split": "train"}], set())
    with pytest.raises(BenchLeakError, match="000001"):  # a test conversation about a train clip
        bench_rows(rows, cfg, 0, other_split_clips={"000001"})
    cfg.motion.counting = 5  # counting: selected like the others, kept as its own category
    bench, stats = bench_rows(rows, cfg, 0, video_motion={"000004": "000004"})
    assert [r["category"] for r in bench if r["motion_id"] == "000005"] == ["counting"]
    assert stats["motion"]["counting"]["chosen"] == 1 and "counting" not in MOVID_BENCH_CATEGORIES


def test_commit_bench_writes_a_conforming_shard(tmp_path):
    import pyarrow as pa

    from schemas.instruction import INSTRUCTION_SCHEMA

    rows = [_row(f"{i:06d}/qa/0", "direction", pairs=2) for i in range(3)] + [_row("000009/qa/0", "direction", split="train")]
    rows.append(_row("000010/qa/0", "direction") | {"facts": '{"direction":"forward"}'})
    shards = []
    for split in ("test", "train"):
        t = [dict(r, annotator={"backend": "offline", "model": None, "prompt_version": "v", "params": "{}"})
             for r in rows if r["split"] == split]  # fmt: skip
        path = tmp_path / "instruction" / split / "part-00000.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(t, schema=INSTRUCTION_SCHEMA), path)
        shards.append({"table": "instruction", "split": split, "path": str(path.relative_to(tmp_path))})
    cfg = BuildConfig(bench=BenchConfig(motion=BenchQuotas(0, 0, 10, 0, 0)))
    entry = commit_bench(tmp_path, shards, cfg)
    (part,) = entry["shards"]
    table = pq.read_table(tmp_path / part["path"])
    check_conforms(table, "bench")
    assert part["path"] == "bench/part-00000.parquet" and part["table"] == "bench"
    assert entry["rows"] == part["rows"] == table.num_rows == 7  # 3 test conversations x 2 pairs + 1; not the train one
    assert [r["facts"] for r in read_bench(tmp_path) if r["facts"]] == ['{"direction":"forward"}']
    assert table.schema.metadata[b"movid.table"] == b"bench"
    assert {r["split"] for r in read_bench(tmp_path)} == {"test"}
    again = commit_bench(tmp_path, shards, cfg)
    assert again["sha256"] == entry["sha256"] and again["shards"] == entry["shards"]  # same inputs, same bytes
    cfg.shard.max_rows = 4  # shard.max_rows holds for the bench too: 7 rows -> parts of 4 and 3
    split = commit_bench(tmp_path, shards, cfg)
    assert [p["rows"] for p in split["shards"]] == [4, 3] and len(read_bench(tmp_path / "bench")) == 7
    cfg.bench.enabled = False
    assert commit_bench(tmp_path, shards, cfg) is None


def test_build_writes_bench_in_manifest(tmp_path):
    """A real (small, local) build: the bench shard is in the manifest, conforms, and has no train clip."""
    from pipeline.sample_data import write_sample_humanml3d
    from pipeline.shards import file_sha256
    from tests.conftest import local_build

    src = tmp_path / "humanml3d"
    write_sample_humanml3d(src, n_motions=16, seed=3)
    m = local_build(src, tmp_path / "out")
    out = tmp_path / "out"
    (entry,) = [s for s in m["shards"] if s["table"] == "bench"]
    assert entry["path"] == "bench/part-00000.parquet" and entry["rows"] == m["bench"]["rows"] > 0
    assert m["counts"]["bench"] == {"all": entry["rows"]} and m["bench"]["shards"] == [entry["path"]]
    assert file_sha256(out / entry["path"]) == entry["sha256"]
    assert json.loads((out / "manifest.json").read_text())["bench"]["rows"] == entry["rows"]
    check_conforms(pq.read_table(out / entry["path"]), "bench")
    bench = read_bench(out / "bench")
    motions = pq.read_table(out / "motion", columns=["motion_id", "split"]).to_pylist()
    not_test = {r["motion_id"] for r in motions if r["split"] != "test"}
    assert bench and all(r["split"] == "test" and r["motion_id"] not in not_test for r in bench)
    assert all("<motion>" not in r["question"] and "<video>" not in r["question"] for r in bench)


def test_bench_config_keys():
    from pipeline.config import ConfigError, load_config

    cfg = load_config(None, ["bench.enabled=false", "bench.motion.direction=7", "bench.seed=3"])
    assert (cfg.bench.enabled, cfg.bench.motion.direction, cfg.bench.seed) == (False, 7, 3)
    assert cfg.bench.video.sequentiality == 216 and cfg.bench.motion.body_part == 205  # MoVid-Bench defaults
    assert sum(vars(cfg.bench.motion).values()) == 205 + 171 + 7 + 148 + 36 + 200  # + counting, reported apart
    assert cfg.bench.motion.counting == cfg.bench.video.counting == 200
    with pytest.raises(ConfigError, match="bench.motion"):
        load_config(None, ["bench.motion.direction=-1"])
    with pytest.raises(ConfigError, match="bench.motion.jumping"):
        load_config(None, ["bench.motion.jumping=3"])
