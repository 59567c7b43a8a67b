"""Table-level checks across shards (great-expectations at commit and in ``movid validate``): each failure
kind is found, counted and shown with examples; a clean build passes; Data Docs are written."""

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.validation import DATA_DOCS, table_checks


def _write(out, name, rows):
    path = out / f"{name}.parquet"
    schema = pa.schema([(k, pa.string()) for k in rows[0]])  # all-null columns stay strings, as in shards
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path.name


def _motion(mid, split, parent=None, mirror=None):
    return {"motion_id": mid, "parent_id": parent, "mirror_of": mirror, "split": split}


def _shards(out, motion, video, instruction):
    shards = [{"table": "motion", "path": _write(out, f"motion-{k}", rows)} for k, rows in enumerate(motion)]
    shards.append({"table": "video", "path": _write(out, "video", video)})
    shards.append({"table": "instruction", "path": _write(out, "instruction", instruction)})
    return shards


def _clean():
    motion = [[_motion("000001", "train"), _motion("M000001", "train", mirror="000001"),
               _motion("000001_0", "train", parent="000001")],
              [_motion("000002", "test")]]  # fmt: skip
    video = [{"video_id": "v1", "motion_id": "000001", "split": "train"},
             {"video_id": "v2", "motion_id": None, "split": "test"}]  # fmt: skip
    instruction = [{"sample_id": "s1", "motion_id": "000001", "video_id": None, "split": "train"},
                   {"sample_id": "s2", "motion_id": None, "video_id": "v2", "split": "test"},
                   {"sample_id": "s3", "motion_id": "M000001", "video_id": "v1", "split": "train"}]  # fmt: skip
    return motion, video, instruction


def test_a_clean_build_passes_and_gets_data_docs(tmp_path):
    result = table_checks(tmp_path, _shards(tmp_path, *_clean()))
    assert result["ok"], result
    assert set(result["checks"]) == {"duplicate_id", "split_leakage", "dangling_motion_reference",
                                     "dangling_video_reference"}  # fmt: skip
    assert (tmp_path / DATA_DOCS / "index.html").is_file()


def test_each_table_level_failure_is_found_with_examples(tmp_path):
    motion, video, instruction = _clean()
    motion[1].append(_motion("000001", "train"))  # the same id in a second shard
    motion[1].append(_motion("M000002", "train", mirror="000002"))  # a test clip's mirror in train
    video.append({"video_id": "v3", "motion_id": "999999", "split": "train"})  # no such motion
    instruction.append({"sample_id": "s4", "motion_id": "000001", "video_id": "v9", "split": "train"})  # no such video
    instruction.append({"sample_id": "s5", "motion_id": "000001_0", "video_id": None, "split": "val"})  # leaks
    checks = table_checks(tmp_path, _shards(tmp_path, motion, video, instruction))["checks"]
    assert not checks["duplicate_id"]["ok"] and checks["duplicate_id"]["unexpected"] == 2
    assert any(e.get("motion_id") == "000001" for e in checks["duplicate_id"]["examples"])
    leak = checks["split_leakage"]
    assert not leak["ok"]
    roots = {e["root"] for e in leak["examples"]}
    assert {"000002", "000001"} <= roots  # the mirror's root, and the sub-clip's conversation's root
    dm, dv = checks["dangling_motion_reference"], checks["dangling_video_reference"]
    assert not dm["ok"] and dm["unexpected"] == 1 and dm["examples"][0]["motion_id"] == "999999"
    assert dm["examples"][0]["video_id"] == "v3"
    assert not dv["ok"] and dv["unexpected"] == 1 and dv["examples"][0]["sample_id"] == "s4"
