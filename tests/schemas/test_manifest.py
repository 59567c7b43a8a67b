"""The one manifest loader (schemas/manifest.py): a missing or corrupt manifest is one line naming the file; a
manifest's shape is checked, its entries are kept as written for movid validate."""

import json

import pytest

from schemas.manifest import Manifest, ManifestError, ShardEntry, has_manifest, load

ENTRY = {"table": "motion", "split": "train", "path": "motion/train/part-00000.parquet", "rows": 3, "bytes": 10,
         "sha256": "ab"}  # fmt: skip


def _write(tmp_path, text: str):
    (tmp_path / "manifest.json").write_text(text)
    return tmp_path


def test_a_manifest_loads_typed(tmp_path):
    data = {"schema_version": "1.3.0", "config_hash": "h", "counts": {"motion": {"train": 3}},
            "shards": [ENTRY, ENTRY | {"table": "quarantine", "split": "_", "path": "quarantine/part-00000.parquet"}],
            "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    m = load(_write(tmp_path, json.dumps(data)))
    assert has_manifest(tmp_path)
    assert (m.schema_version, m.config_hash, m.counts) == ("1.3.0", "h", {"motion": {"train": 3}})
    assert m.shard_entries("motion") == [ShardEntry(**ENTRY)]
    assert [s.path for s in m.shard_entries("quarantine", "_")] == ["quarantine/part-00000.parquet"]
    assert m.raw == data and m.quarantine_reasons == {} and m.requeue == {}  # absent keys: empty


@pytest.mark.parametrize("text, needle", [
    (None, "has no manifest.json: the build is not finished"),
    ('{"shards": [', "manifest.json is not valid JSON"),
    ("[1, 2]", "not a manifest (a JSON list, not an object)"),
    ('{"schema_version": "1.3.0"}', "not a manifest (no list of shards)"),
    ('{"shards": [1]}', "not a manifest (no list of shards)"),
    ('{"shards": [], "counts": {"motion": 3}}', "counts is not a mapping of tables"),
    ("\udcff", "is not valid JSON"),
], ids=["missing", "truncated", "a_list", "no_shards", "entry_not_object", "counts_flat", "not_utf8"])  # fmt: skip
def test_a_missing_or_corrupt_manifest_is_one_line(tmp_path, text, needle):
    if text == "\udcff":
        (tmp_path / "manifest.json").write_bytes(b"\xff\xfe{")
    elif text is not None:
        _write(tmp_path, text)
    with pytest.raises(ManifestError) as exc:
        load(tmp_path)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_an_entry_is_kept_as_written_until_asked_for(tmp_path):
    m = Manifest.from_dict({"shards": [{"table": "motion"}]})  # (validate reports such an entry by itself)
    assert m.shards == [{"table": "motion"}]
    with pytest.raises(ManifestError, match="a shard entry without 'split'"):
        m.shard_entries("motion")
