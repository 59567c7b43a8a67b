"""Red team, ids and split files: a BOM at the start of a split file, CRLF and CR endings, ids that climb
out of the tree or are absolute, too long for a file name, or hold NUL, spaces, control characters, bad
UTF-8 — each an ``invalid_id`` (or ``split_conflict`` / ``no_split``) quarantine row while every real id
plans; a split file symlinked out of the tree is a one-line error.

One build (validation off: the planner and the ingest are what is under test here).
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from schemas.quarantine import Reject
from tests.redteam.harness import Sandbox, assert_one_line_error, cli_inproc
from tests.redteam.sources import HumanML3DTree, build

LONGEST = "L" * 251  # <id>.npy is then 255 bytes, the longest file name the usual file systems allow

# id as written in train.txt → expected reason ("accepted": a motion row). Bytes are written as they are.
HOSTILE: dict[bytes, str] = {
    b"../etc/passwd": "invalid_id",
    b"/etc/passwd": "invalid_id",
    b"..": "invalid_id",
    b".hidden": "invalid_id",
    b"-rf": "invalid_id",
    b"a/b": "invalid_id",
    b"a\\b": "invalid_id",
    b"ab\x00cd": "invalid_id",
    b"ab cd": "invalid_id",
    b"ab\x0bcd": "invalid_id",  # (str.splitlines would have made it two ids)
    b"ab\x1ecd": "invalid_id",
    b"ab\xffcd": "invalid_id",  # not UTF-8
    "\u00fcber".encode(): "invalid_id",
    b"x" * 252: "invalid_id",
    b"y" * 300: "invalid_id",
    b"z" * 1_000_000: "invalid_id",
    b"sql';drop table--": "invalid_id",
}


def _record_id(raw: bytes) -> str:
    """The id as the quarantine stores it (decoded as the planner reads it, then sanitised)."""
    return Reject(raw.decode("utf-8", errors="replace"), "motion", "plan", "x", "", "humanml3d").record_id


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt_ids")
    tree = HumanML3DTree(d / "humanml3d", n=4)
    root = tree.root
    first_train = (root / "train.txt").read_text().split()[0]
    # train.txt: a BOM first (an editor's), then the hostile ids, a duplicate listing and a leak into test
    tree.add("rt_leak", split="test")
    tree.add("rt_dup")
    tree.list_id("rt_dup")
    tree.add("rt_leak")  # listed in train too
    tree.add(LONGEST)
    body = (root / "train.txt").read_bytes()
    (root / "train.txt").write_bytes(b"\xef\xbb\xbf" + body + b"".join(raw + b"\n" for raw in HOSTILE))
    # val.txt with CRLF endings, test.txt with bare CR (old Mac), all.txt names an id of no split
    for mid, split in (("rt_crlf_a", "val"), ("rt_crlf_b", "val"), ("rt_cr_a", "test"), ("rt_cr_b", "test")):
        tree.add(mid, split=split)
    for name, eol in (("val.txt", b"\r\n"), ("test.txt", b"\r")):
        ids = (root / name).read_bytes().split()
        (root / name).write_bytes(b"".join(i + eol for i in ids))
    tree.add("rt_all_only", split="all")
    out = d / "out"
    b = build(Sandbox(d, out), out, [f"humanml3d={root}"], validate=False)
    motions = {r["motion_id"] for f in sorted((out / "motion").rglob("*.parquet"))
               for r in pq.read_table(f, columns=["motion_id"]).to_pylist()}  # fmt: skip
    return b, motions, first_train, {s: (root / f"{s}.txt").read_bytes().split() for s in ("val", "test")}


@pytest.mark.parametrize("raw", list(HOSTILE), ids=[repr(r[:24]) for r in HOSTILE])
def test_hostile_id(built, raw):
    b, motions, _, _ = built
    assert b.reasons.get(_record_id(raw)) == HOSTILE[raw], (_record_id(raw)[:80], b.reasons.get(_record_id(raw)))


def test_bom_at_the_start_of_a_split_file_is_not_part_of_the_first_id(built):
    b, motions, first, _ = built
    assert first in motions
    assert not any("\ufeff" in rid for rid in b.reasons), [r for r in b.reasons if "\ufeff" in r]


def test_crlf_and_bare_cr_split_files_plan_every_id(built):
    b, motions, _, listed = built
    for split in ("val", "test"):
        ids = [i.decode() for i in listed[split] if i.decode() != "rt_leak"]
        assert len(ids) >= 2 and set(ids) <= motions, (split, set(ids) - motions)
    assert {"rt_crlf_a", "rt_crlf_b", "rt_cr_a", "rt_cr_b"} <= motions


def test_longest_id_a_file_system_allows_builds(built):
    assert LONGEST in built[1]


def test_an_id_in_two_splits_is_a_conflict(built):
    assert built[0].reasons["rt_leak"] == "split_conflict"


def test_an_id_only_in_all_txt_has_no_split(built):
    assert built[0].reasons["rt_all_only"] == "no_split"


def test_a_duplicate_listing_is_one_record(built):
    b, motions, _, _ = built
    assert "rt_dup" in motions and "rt_dup" not in b.reasons
    assert b.manifest["stages"]["plan"]["duplicate_listings"] == 1


def test_empty_split_file_plans_nothing_from_it(tmp_path):
    tree = HumanML3DTree(tmp_path / "humanml3d", n=2)
    (tree.root / "test.txt").write_bytes(b"")
    (tree.root / "val.txt").write_bytes(b"\xef\xbb\xbf\r\n\r\n")  # a BOM and blank lines: still empty
    out = tmp_path / "out"
    b = build(Sandbox(tmp_path, out), out, [f"humanml3d={tree.root}"], validate=False)
    assert b.manifest["counts"]["motion"].get("test", 0) == 0 and b.manifest["counts"]["motion"]["train"] > 0


def test_split_file_symlinked_out_of_the_tree_is_refused(tmp_path):
    tree = HumanML3DTree(tmp_path / "humanml3d", n=1)
    elsewhere = tmp_path / "elsewhere.txt"
    (tree.root / "train.txt").rename(elsewhere)
    (tree.root / "train.txt").symlink_to(elsewhere)
    res = cli_inproc("build", "--out", tmp_path / "out", "--executor", "local", "--quiet",
                     "--source", f"humanml3d={tree.root}")  # fmt: skip
    assert_one_line_error(res, "train.txt", "resolves outside", "ingest.allowed_roots")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_tree_without_split_files_is_refused(tmp_path):
    (tmp_path / "humanml3d").mkdir()
    res = cli_inproc("build", "--out", tmp_path / "out", "--executor", "local", "--source",
                     f"humanml3d={tmp_path / 'humanml3d'}")  # fmt: skip
    assert_one_line_error(res, "no split file")
