"""Red team, caption texts: BOMs, NUL and other control characters, bare CR, a 10 MB line, too many lines,
bad UTF-8, and caption files that are symlinks out of the tree (one to ``/proc/self/environ``, where the
secret lives) — each one record or line quarantined with its reason, normalised text accepted, and nothing
unnormalised (BOM, NUL, CR, control characters) in any caption or conversation of the build.

One build, in a fresh process holding the secret in its environment.
"""

from __future__ import annotations

import os
import re

import pyarrow.parquet as pq
import pytest

from tests.redteam.harness import Sandbox, assert_no_secret
from tests.redteam.sources import CAPTION, HumanML3DTree, build

WALK = "a person walks forward."
JUMP = b"a person jumps up.#a/DET person/NOUN jump/VERB up/ADV#0.0#0.0"
OUTSIDE_MARKER = "outside-the-tree-caption-7d41"
# (a conversation's own "<motion>\n…" line break is movid's; everything else here would be the data's)
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u2028\u2029]")


def _line(caption: bytes) -> bytes:
    return caption + b"#a/DET person/NOUN#0.0#0.0\n"


# name → (file bytes or a special kind, {record suffix: reason} quarantined, captions accepted or None)
CASES = {
    "bom_start": (b"\xef\xbb\xbf" + CAPTION, {}, [WALK]),
    "bom_only": (b"\xef\xbb\xbf\n", {"/texts:1": "empty_caption", "": "no_valid_caption"}, None),
    "bom_mid_file": (CAPTION + b"\xef\xbb\xbf" + JUMP + b"\n", {}, [WALK, "a person jumps up."]),
    "nul_in_line": (CAPTION + _line(b"a per\x00son jumps."), {"/texts:2": "control_characters"}, [WALK]),
    "nul_only": (b"\x00" * 64, {"/texts:1": "control_characters", "": "no_valid_caption"}, None),
    "ansi_escape": (CAPTION + _line(b"\x1b[31ma red person\x1b[0m"), {"/texts:2": "control_characters"}, [WALK]),
    "del_char": (CAPTION + _line(b"a person\x7f waves."), {"/texts:2": "control_characters"}, [WALK]),
    "c1_control": (CAPTION + _line("a person\u009b waves.".encode()), {"/texts:2": "control_characters"}, [WALK]),
    "bare_cr": (CAPTION.rstrip(b"\n") + b"\r" + JUMP + b"\r", {}, [WALK, "a person jumps up."]),
    "crlf": (CAPTION.rstrip(b"\n") + b"\r\n" + JUMP + b"\r\n", {}, [WALK, "a person jumps up."]),
    "tab_inside": (b"a person\twalks forward.#a/DET person/NOUN walk/VERB#0.0#0.0\n", {}, ["a person walks forward."]),
    "line_separator": ("a person\u2028walks forward.#a/DET person/NOUN walk/VERB#0.0#0.0\n".encode(), {},
                       ["a person walks forward."]),
    "ten_mb_line": (CAPTION + b"a " * 5_000_000 + b"#a/DET#0.0#0.0\n", {"/texts:2": "caption_too_long"}, [WALK]),
    "caption_1001_chars": (CAPTION + _line(b"a" * 1001), {"/texts:2": "caption_too_long"}, [WALK]),
    "too_many_captions": (CAPTION * 65, {"": "too_many_captions"}, None),
    "invalid_utf8": (CAPTION + _line(b"a person \xff\xfe waves."), {"/texts:2": "non_utf8_caption"}, [WALK]),
    "huge_span": (CAPTION + b"a person runs.#a/DET person/NOUN run/VERB#0.0#1e308\n",
                  {"/texts:2": "span_outside_clip"}, [WALK]),
    "empty_file": (b"", {"": "no_valid_caption"}, None),
    "text_too_large": ("17MB", {"": "text_too_large"}, None),
    "symlink_to_environ": ("environ", {"": "path_outside_root"}, None),
    "symlink_outside_tree": ("outside", {"": "path_outside_root"}, None),
    "relative_symlink_up": ("../..", {"": "path_outside_root"}, None),
    "text_is_directory": ("dir", {"": "missing_file"}, None),
    "text_is_fifo": ("fifo", {"": "missing_file"}, None),
}


def _plant(tree: HumanML3DTree, outside, name: str, content) -> None:
    mid = f"rt_{name}"
    text = tree.path("text", mid)
    if isinstance(content, bytes):
        tree.add(mid, text=content)
        return
    tree.add(mid, text=None)
    if content == "17MB":
        text.write_bytes(CAPTION * (17 * 1024**2 // len(CAPTION) + 1))
    elif content == "environ":
        text.symlink_to("/proc/self/environ")
    elif content == "outside":
        text.symlink_to(outside / "caption.txt")
    elif content == "../..":
        text.symlink_to(os.path.relpath(outside / "caption.txt", text.parent))
    elif content == "dir":
        text.mkdir()
    elif content == "fifo":
        os.mkfifo(text)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt_texts")
    tree = HumanML3DTree(d / "humanml3d")
    outside = d / "outside"
    outside.mkdir()
    (outside / "caption.txt").write_text(f"{OUTSIDE_MARKER} walks.#a/DET#0.0#0.0\n")
    for name, (content, _, _) in CASES.items():
        _plant(tree, outside, name, content)
    out = d / "out"
    b = build(Sandbox(d, out), out, [f"humanml3d={tree.root}"])
    read = lambda t, cols: [r for f in sorted((out / t).rglob("*.parquet")) for r in pq.read_table(f, columns=cols).to_pylist()]  # noqa: E731
    motions = {r["motion_id"]: r for r in read("motion", ["motion_id", "texts"])}
    instructions = read("instruction", ["sample_id", "conversations"])
    return b, motions, instructions


@pytest.mark.parametrize("name", list(CASES))
def test_caption_file(built, name):
    b, motions, _ = built
    mid = f"rt_{name}"
    _, quarantined, accepted = CASES[name]
    for suffix, reason in quarantined.items():
        assert b.reasons.get(mid + suffix) == reason, (mid + suffix, b.reasons.get(mid + suffix))
    if accepted is None:
        assert mid not in motions
    else:
        assert [t["caption"] for t in motions[mid]["texts"]] == accepted


def test_no_unnormalised_text_reaches_a_caption_or_a_conversation(built):
    _, motions, instructions = built
    captions = [t["caption"] for m in motions.values() for t in m["texts"]]
    turns = [c["content"] for r in instructions for c in r["conversations"]]
    assert captions and turns
    for text in captions + turns:
        assert not CONTROL.search(text), repr(text[:200])
    assert not any("\n" in c for c in captions)
    assert max(map(len, captions)) <= 1000 and max(map(len, turns)) < 20_000  # no 10 MB caption anywhere


def test_nothing_of_a_file_outside_the_tree_reaches_out(built):
    b, _, _ = built
    assert_no_secret(b.out, OUTSIDE_MARKER)  # (the harness already searched OUT for the environment's secret)


def test_quarantine_details_quote_only_short_escaped_excerpts(built):
    from tests.redteam.harness import quarantine

    rows = quarantine(built[0].out)
    assert rows
    for r in rows:
        assert len(r["detail"]) <= 600 and r["detail"].isprintable(), r
    nul = next(r for r in rows if r["record_id"] == "rt_nul_in_line/texts:2")
    assert "\\x00" in nul["detail"]
