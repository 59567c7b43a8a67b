"""Reading untrusted source files: containment in the source root, .npy/.npz headers checked against the
bytes before anything is allocated, bounded text."""

import io
import zipfile

import numpy as np
import pytest

from stages.source_files import SourceFileError, SourceRoot, npy_shape, read_npy, read_npz, read_text


def _reason(fn, *args, **kw) -> str:
    with pytest.raises(SourceFileError) as info:
        fn(*args, **kw)
    return info.value.reason


def test_paths_resolve_inside_the_root_or_are_refused(tmp_path):
    root, outside = tmp_path / "src", tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "f.npy").write_bytes(b"x")
    (root / "a" / "in.npy").write_bytes(b"x")
    (root / "a" / "out.npy").symlink_to(outside / "f.npy")
    (root / "a" / "back.npy").symlink_to("in.npy")
    src = SourceRoot(root)
    assert src.resolve("a/in.npy") == (root / "a" / "in.npy").resolve()
    assert src.resolve("a/back.npy") == (root / "a" / "in.npy").resolve()  # a link that stays inside
    assert src.resolve("a/missing.npy") == (root / "a" / "missing.npy").resolve()  # existence is the caller's
    for rel in ("a/out.npy", "../outside/f.npy", str(outside / "f.npy"), "a/../../outside/f.npy", ".."):
        assert _reason(src.resolve, rel) == "path_outside_root", rel
    assert _reason(src.resolve, "a/b\x00.npy") == "invalid_path"
    assert SourceRoot(root, [str(outside)]).resolve("a/out.npy") == (outside / "f.npy").resolve()


def _lying(path, shape, descr="<f4", payload=b"", fortran=False):
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": fortran, "shape": shape})
        fh.write(payload)


def test_npy_headers_are_checked_before_allocating(tmp_path):
    p = tmp_path / "x.npy"
    _lying(p, (10**12, 263), payload=bytes(4 * 263 * 40))  # ~1 PB promised by 40 frames
    assert _reason(read_npy, p, "x.npy", max_frames=10**13) == "truncated_file"
    assert npy_shape(p, "x.npy") == (10**12, 263)  # the header alone, for the planner
    np.save(p, np.zeros((50, 3), np.float32))
    assert _reason(read_npy, p, "x.npy", max_frames=49) == "too_many_frames"
    np.save(p, np.zeros((5, 3), np.int64))
    assert _reason(read_npy, p, "x.npy", max_frames=100) == "wrong_dtype"
    assert read_npy(p, "x.npy", max_frames=100, kinds="").dtype == np.int64
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert _reason(read_npy, p, "x.npy", max_frames=100, kinds="") == "unreadable_file"
    _lying(p, (-1, 3), payload=bytes(12))
    assert _reason(read_npy, p, "x.npy", max_frames=100) == "unreadable_file"
    p.write_bytes(b"not an array")
    assert _reason(read_npy, p, "x.npy", max_frames=100) == "unreadable_file"


@pytest.mark.parametrize("arr", [np.arange(60, dtype=np.float32).reshape(20, 3),
                                 np.asfortranarray(np.arange(60, dtype=">f8").reshape(20, 3)),
                                 np.zeros((0, 263), np.float32), np.float32(3.5)])  # fmt: skip
def test_npy_reads_what_numpy_writes(tmp_path, arr):
    np.save(tmp_path / "x.npy", arr)
    got = read_npy(tmp_path / "x.npy", "x.npy", max_frames=100)
    np.testing.assert_array_equal(got, np.load(tmp_path / "x.npy"))
    assert got.shape == np.shape(arr)


def test_npz_members_are_checked_against_their_declared_size(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, poses=np.ones((10, 156), np.float32), trans=np.zeros((10, 3)), gender=np.array("male"))
    got = read_npz(p, "x.npz", max_frames=100)
    assert set(got) == {"poses", "trans", "gender"} and got["poses"].sum() == 1560 and str(got["gender"]) == "male"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 156)})
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("poses.npy", buf.getvalue() + bytes(4 * 156 * 3))
    assert _reason(read_npz, p, "x.npz", max_frames=10**10) == "truncated_file"
    buf = io.BytesIO()
    np.save(buf, np.array([None], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("poses.npy", buf.getvalue())
    assert _reason(read_npz, p, "x.npz", max_frames=100) == "unreadable_file"
    p.write_bytes(b"PK\x03\x04 not a zip")
    assert _reason(read_npz, p, "x.npz", max_frames=100) == "unreadable_file"


def test_text_is_read_up_to_its_cap(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes(b"x" * 100)
    assert read_text(p, "t.txt", max_bytes=100) == b"x" * 100
    assert _reason(read_text, p, "t.txt", max_bytes=99) == "text_too_large"
    assert _reason(read_text, tmp_path, "t.txt", max_bytes=99) == "unreadable_file"  # a folder
