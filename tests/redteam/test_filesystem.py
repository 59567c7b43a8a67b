"""Red team, file system and symlinks: source files that are symlinks out of the tree (absolute, relative,
to ``/proc`` and ``/dev``), symlink loops, dangling links, a FIFO — each one record quarantined with its reason
and never opened, while symlinks that stay inside the tree are followed; ``ingest.allowed_roots`` opts a
folder outside the tree in, and only that folder.

Two builds (validation off: containment is decided at ingest): a hostile tree, and a tree laid out the
way real data often is (folders symlinked to another disk) built with ``ingest.allowed_roots``.
"""

from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq
import pytest

from tests.redteam.harness import Sandbox, assert_no_secret, assert_one_line_error, cli_inproc
from tests.redteam.sources import HumanML3DTree, build

MARKER = "outside-the-tree-7c0ffee"


def _motions(out) -> set[str]:
    return {r["motion_id"] for f in sorted((out / "motion").rglob("*.parquet"))
            for r in pq.read_table(f, columns=["motion_id"]).to_pylist()}  # fmt: skip


def _link(path, target) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)


# name → expected reason ("accepted": a motion row)
CASES = {
    "features_to_outside_abs": "path_outside_root",
    "features_to_outside_rel": "path_outside_root",
    "joints_to_outside": "path_outside_root",
    "text_to_outside": "path_outside_root",
    "features_to_proc_environ": "path_outside_root",
    "text_to_dev_zero": "path_outside_root",  # would never end if read
    "features_to_dev_urandom": "path_outside_root",
    "all_three_outside": "path_outside_root",
    "through_outside_dir": "path_outside_root",  # a link to a folder outside, then the file in it
    "self_loop": "missing_file",
    "two_link_loop": "missing_file",
    "dangling": "missing_file",
    "fifo_joints": "missing_file",  # never opened: it would block
    "inside_link": "accepted",
    "inside_relative_link": "accepted",
    "out_and_back_in": "accepted",  # the final target decides, and it is inside
}


def _plant(tree: HumanML3DTree, outside, name: str) -> None:
    mid = f"rt_{name}"
    tree.add(mid)
    feats, joints, text = (tree.path(k, mid) for k in ("features", "joints", "text"))
    if name == "features_to_outside_abs":
        _link(feats, outside / "feat.npy")
    elif name == "features_to_outside_rel":
        _link(feats, os.path.relpath(outside / "feat.npy", feats.parent))
    elif name == "joints_to_outside":
        _link(joints, outside / "joints.npy")
    elif name == "text_to_outside":
        _link(text, outside / "caption.txt")
    elif name == "features_to_proc_environ":
        _link(feats, "/proc/self/environ")
    elif name == "text_to_dev_zero":
        _link(text, "/dev/zero")
    elif name == "features_to_dev_urandom":
        _link(feats, "/dev/urandom")
    elif name == "all_three_outside":
        for p, t in ((feats, "feat.npy"), (joints, "joints.npy"), (text, "caption.txt")):
            _link(p, outside / t)
    elif name == "through_outside_dir":
        (tree.root / "new_joint_vecs" / "sub").symlink_to(outside, target_is_directory=True)
        _link(feats, tree.root / "new_joint_vecs" / "sub" / "feat.npy")
    elif name == "self_loop":
        _link(feats, feats.name)
    elif name == "two_link_loop":
        other = feats.with_name("rt_loop_other.npy")
        other.symlink_to(feats.name)
        _link(feats, other.name)
    elif name == "dangling":
        _link(feats, "no_such_file.npy")
    elif name == "fifo_joints":
        joints.unlink()
        os.mkfifo(joints)
    elif name == "inside_link":
        _link(feats, tree.root / "new_joint_vecs" / "000000.npy")
    elif name == "inside_relative_link":
        _link(text, "../texts/000000.txt")
    elif name == "out_and_back_in":
        (outside / "hop.npy").symlink_to(tree.root / "new_joint_vecs" / "000000.npy")
        _link(feats, outside / "hop.npy")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt_fs")
    tree = HumanML3DTree(d / "humanml3d")
    outside = d / "outside"
    outside.mkdir()
    shutil.copy(tree.path("features", "000000"), outside / "feat.npy")
    shutil.copy(tree.path("joints", "000000"), outside / "joints.npy")
    (outside / "caption.txt").write_text(f"{MARKER} walks.#a/DET#0.0#0.0\n")
    for name in CASES:
        _plant(tree, outside, name)
    out = d / "out"
    b = build(Sandbox(d, out), out, [f"humanml3d={tree.root}"], validate=False)
    return b, _motions(out)


@pytest.mark.parametrize("name", list(CASES))
def test_symlinked_source_file(built, name):
    b, motions = built
    mid = f"rt_{name}"
    if CASES[name] == "accepted":
        assert mid in motions and mid not in b.reasons, b.reasons.get(mid)
    else:
        assert b.reasons.get(mid) == CASES[name], (mid, b.reasons.get(mid))
        assert mid not in motions


def test_nothing_outside_the_tree_was_read_into_out(built):
    assert_no_secret(built[0].out, MARKER)


def test_path_outside_root_detail_names_the_key_to_allow_it(built):
    from tests.redteam.harness import quarantine

    row = next(r for r in quarantine(built[0].out) if r["record_id"] == "rt_features_to_proc_environ")
    assert "ingest.allowed_roots" in row["detail"] and "environ" not in row["detail"].split("resolves")[1]


@pytest.fixture(scope="module")
def allowed_build(tmp_path_factory):
    """A tree whose texts/ folder lives on "another disk" (a symlink out) and whose source path is itself a
    symlink; one feature file links to a second outside folder that is not allowed."""
    d = tmp_path_factory.mktemp("rt_fs_allowed")
    tree = HumanML3DTree(d / "data" / "humanml3d")
    disk2, stray = d / "disk2", d / "stray"
    stray.mkdir()
    shutil.move(tree.root / "texts", disk2)
    (tree.root / "texts").symlink_to(disk2, target_is_directory=True)
    tree.add("rt_not_allowed")
    shutil.copy(tree.path("features", "000000"), stray / "feat.npy")
    _link(tree.path("features", "rt_not_allowed"), stray / "feat.npy")
    (d / "via_link").symlink_to(tree.root, target_is_directory=True)
    out = d / "out"
    refused = build(Sandbox(d, out), out, [f"humanml3d={d / 'via_link'}"], validate=False)
    out2 = d / "out2"
    allowed = build(Sandbox(d, out, out2), out2, [f"humanml3d={d / 'via_link'}"], f"ingest.allowed_roots=[{disk2}]",
                    validate=False)  # fmt: skip
    return refused, allowed, _motions(out2)


def test_a_texts_folder_on_another_disk_is_refused_by_default(allowed_build):
    refused, _, _ = allowed_build
    assert set(refused.reasons.values()) == {"path_outside_root"}
    assert "000000" in refused.reasons and "rt_not_allowed" in refused.reasons


def test_allowed_roots_opts_in_that_folder_only(allowed_build):
    _, allowed, motions = allowed_build
    assert "000000" in motions and "M000000" in motions
    assert allowed.reasons == {"rt_not_allowed": "path_outside_root"}


def test_allowed_root_that_is_not_a_folder_is_refused(tmp_path):
    tree = HumanML3DTree(tmp_path / "humanml3d", n=1)
    res = cli_inproc("build", "--out", tmp_path / "out", "--executor", "local", "--source", f"humanml3d={tree.root}",
                     "--set", f"ingest.allowed_roots=[{tmp_path / 'nope'}]")  # fmt: skip
    assert_one_line_error(res, "ingest.allowed_roots[0]", "is not a directory")
