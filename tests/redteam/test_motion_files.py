"""Red team, motion files: ``.npy`` files that are empty, lie in their header, hold the wrong dtype or shape,
pickled objects, NaN, a directory where a file should be — each one record quarantined with its reason (never
an aborted build, never an allocation the file cannot back), while well-formed but unusual files (Fortran
order, big-endian float64, trailing bytes) are read correctly.

The same for SMPL-family sources: AMASS ``.npz`` members whose header lies or that hold pickles, an
``index.csv`` ``source_path`` of ``../`` or an absolute path, a broken index row (one quarantine row, not a
failed build), Motion-X files linked out of the tree, a body model linked out of ``smpl.model_dir``.

One HumanML3D build (validation on; ``ingest.max_file_frames`` lowered to 5,000 so that a real file over the
cap stays a few MB) and one AMASS + Motion-X build (validation off) serve every case.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.redteam.harness import Sandbox, assert_one_line_error, cli_inproc
from tests.redteam.sources import HumanML3DTree, build

FMT = np.lib.format
MAX_FILE_FRAMES = 5000


def _raw_npy(path, descr: str, shape: tuple, payload: bytes = b"", fortran: bool = False) -> None:
    """A .npy file whose header says ``descr``/``shape`` whatever ``payload`` holds."""
    with open(path, "wb") as fh:
        FMT.write_array_header_1_0(fh, {"descr": descr, "fortran_order": fortran, "shape": shape})
        fh.write(payload)


def _with_header_bytes(path, magic_version: bytes, header: bytes) -> None:
    path.write_bytes(b"\x93NUMPY" + magic_version + header)


def _cases(tree: HumanML3DTree) -> dict[str, str]:
    """Write one hostile record per case; returns motion id → expected reason ("accepted": a motion row)."""
    f, j = tree.features, tree.joints
    forty = f[:40].astype("<f4").tobytes()
    expected = {}

    def case(name, reason, **kw):
        mid = f"rt_{name}"
        tree.add(mid, **kw)
        expected[mid] = reason
        return mid

    case("zero_frames", "too_short", features=f[:0], joints=j[:0])
    case("header_claims_1tb", "truncated_file")  # ~1e9 frames of 263 float32 in a file of 40
    _raw_npy(tree.path("features", "rt_header_claims_1tb"), "<f4", (1_000_000_000, 263), forty)
    case("header_claims_more", "truncated_file")  # under the frame cap, still more than the file holds
    _raw_npy(tree.path("features", "rt_header_claims_more"), "<f4", (4000, 263), forty)
    case("header_only", "truncated_file")
    _raw_npy(tree.path("features", "rt_header_only"), "<f4", (40, 263))
    case("over_frame_cap", "too_many_frames",
         features=np.zeros((MAX_FILE_FRAMES + 1, 263), np.float32), joints=np.zeros((MAX_FILE_FRAMES + 1, 22, 3), np.float32))  # fmt: skip
    case("int_dtype", "wrong_dtype", features=f.astype(np.int32))
    case("complex_dtype", "wrong_dtype", features=f.astype(np.complex64))
    case("structured_dtype", "wrong_dtype", joints=np.zeros(len(j), dtype=[("x", "<f4"), ("y", "<f4")]))
    case("object_pickle", "unreadable_file")
    np.save(tree.path("features", "rt_object_pickle"), np.array([{"evil": 1}, None], dtype=object), allow_pickle=True)
    case("one_d", "wrong_shape", features=f.reshape(-1))
    case("three_d", "wrong_shape", features=f[:, :, None])
    case("negative_dim", "unreadable_file")
    _raw_npy(tree.path("features", "rt_negative_dim"), "<f4", (-1, 263), forty)
    case("wide_rows", "wrong_shape")  # a header asking for a million values a frame
    _raw_npy(tree.path("features", "rt_wide_rows"), "<f4", (40, 1_000_000), forty)
    nan = f.copy()
    nan[5, 7] = np.nan
    case("nan_features", "non_finite", features=nan)
    inf = j.copy()
    inf[3, 2, 1] = np.inf
    case("inf_joints", "non_finite", joints=inf)
    case("garbage_magic", "unreadable_file")
    tree.path("features", "rt_garbage_magic").write_bytes(b"\x93NUMPY garbage that is not an array")
    case("text_not_npy", "unreadable_file")
    tree.path("features", "rt_text_not_npy").write_text("0.1 0.2 0.3\n")
    case("empty_file", "unreadable_file")
    tree.path("features", "rt_empty_file").write_bytes(b"")
    case("version_3", "unreadable_file")  # format 3.0 (utf-8 header) is not what motion files are written in
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (40, 263), }".ljust(118) + b"\n"
    _with_header_bytes(tree.path("features", "rt_version_3"), b"\x03\x00", struct.pack("<I", len(header)) + header + forty)
    case("huge_header", "unreadable_file")  # a 2.0 header announcing 1 MB of dict text
    _with_header_bytes(tree.path("features", "rt_huge_header"), b"\x02\x00", struct.pack("<I", 1 << 20) + b"{" * 64)
    case("directory_named_npy", "missing_file")
    tree.path("features", "rt_directory_named_npy").unlink()
    tree.path("features", "rt_directory_named_npy").mkdir()
    # well-formed, unusual: read as they are
    case("fortran_order", "accepted", features=np.asfortranarray(f), joints=np.asfortranarray(j))
    case("big_endian_f8", "accepted", features=f.astype(">f8"), joints=j.astype(">f8"))
    case("float16", "accepted", features=f.astype(np.float16), joints=j.astype(np.float16))
    case("trailing_bytes", "accepted")
    with open(tree.path("features", "rt_trailing_bytes"), "ab") as fh:
        fh.write(b"\x00" * 100)
    return expected


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rt_motion")
    tree = HumanML3DTree(d / "humanml3d")
    expected = _cases(tree)
    out = d / "out"
    b = build(Sandbox(d, out), out, [f"humanml3d={tree.root}"], f"ingest.max_file_frames={MAX_FILE_FRAMES}")
    motions = {r["motion_id"]: r for f in sorted((out / "motion").rglob("*.parquet"))
               for r in pq.read_table(f, columns=["motion_id", "features", "num_frames"]).to_pylist()}  # fmt: skip
    return tree, b, motions, expected


CASES = ["zero_frames", "header_claims_1tb", "header_claims_more", "header_only", "over_frame_cap", "int_dtype",
         "complex_dtype", "structured_dtype", "object_pickle", "one_d", "three_d", "negative_dim", "wide_rows",
         "nan_features", "inf_joints", "garbage_magic", "text_not_npy", "empty_file", "version_3", "huge_header",
         "directory_named_npy", "fortran_order", "big_endian_f8", "float16", "trailing_bytes"]  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_motion_file(built, name):
    tree, b, motions, expected = built
    mid = f"rt_{name}"
    if expected[mid] == "accepted":
        assert mid not in b.reasons, b.reasons.get(mid)
        row = motions[mid]
        got = np.asarray(row["features"], np.float32).reshape(row["num_frames"], -1)
        np.testing.assert_allclose(got, tree.features.astype(np.float32), atol=2e-2 if name == "float16" else 1e-6)
    else:
        assert b.reasons.get(mid) == expected[mid], (mid, b.reasons.get(mid))
        assert mid not in motions


def test_every_case_is_listed(built):
    assert {f"rt_{n}" for n in CASES} == set(built[3])


def test_the_clean_clips_still_build(built):
    _tree, b, motions, _ = built
    assert {"000000", "M000000", "000001", "000002"} <= set(motions)
    assert b.manifest["reconciliation"]["ok"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway")
def test_unreadable_permission(tmp_path):
    tree = HumanML3DTree(tmp_path / "humanml3d", n=1)
    tree.add("rt_mode_000")
    tree.path("features", "rt_mode_000").chmod(0)
    out = tmp_path / "out"
    b = build(Sandbox(tmp_path, out), out, [f"humanml3d={tree.root}"], validate=False)
    assert b.reasons["rt_mode_000"] == "unreadable_file"


# --- SMPL-family sources: AMASS .npz / humanact12 .npy through index.csv, Motion-X .npy ----------------------


def _npy_bytes(arr, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _lying_npy_bytes(descr: str, shape: tuple, payload: bytes) -> bytes:
    buf = io.BytesIO()
    FMT.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def _npz(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)


def _amass_members(frames: int = 120, **override) -> dict[str, bytes]:
    arrays = {"poses": np.zeros((frames, 156), np.float32), "trans": np.zeros((frames, 3), np.float32),
              "betas": np.zeros(16, np.float32), "gender": np.array("male"), "mocap_framerate": np.array(60.0)}  # fmt: skip
    members = {k: _npy_bytes(v) for k, v in arrays.items()}
    return members | override


@pytest.fixture(scope="module")
def smpl_built(tmp_path_factory):
    from pipeline.sample_data import write_sample_smpl

    d = tmp_path_factory.mktemp("rt_smpl")
    write_sample_smpl(d, n_clips=4, seed=3)
    amass, motionx, outside = d / "amass", d / "motionx", d / "outside"
    outside.mkdir()
    (amass / "KIT" / "rt").mkdir(parents=True)
    real_npz = next((amass / "KIT" / "3").glob("*.npz"))
    shutil.copy(real_npz, outside / "x_poses.npz")
    (outside / "caption.txt").write_text("a person waves from outside.#a/DET person/NOUN wave/VERB#0.0#0.0\n")
    rt = amass / "KIT" / "rt"
    (rt / "linked_poses.npz").symlink_to(outside / "x_poses.npz")
    _npz(rt / "lying_poses.npz", _amass_members(poses=_lying_npy_bytes("<f4", (1_000_000_000, 156), bytes(4 * 156 * 10))))
    _npz(rt / "pickled_poses.npz", _amass_members(poses=_npy_bytes(np.array([{"x": 1}], dtype=object), allow_pickle=True)))
    _npz(rt / "zero_poses.npz", _amass_members(frames=0))
    _npz(rt / "nanfps_poses.npz", _amass_members(mocap_framerate=_npy_bytes(np.array(np.nan))))
    _npz(rt / "members_poses.npz", {f"m{k}": _npy_bytes(np.zeros(1)) for k in range(200)})
    (amass / "humanact12" / "humanact12").mkdir(parents=True, exist_ok=True)
    (amass / "humanact12" / "humanact12" / "Plie.npy").write_bytes(
        _lying_npy_bytes("<f4", (50_000, 24, 3), bytes(4 * 72 * 5)))
    rows = {  # new_name → (index.csv row, expected reason for it and its M twin)
        "000200": ("./pose_data/../outside/x_poses.npy,0,50", "path_outside_root"),
        "000201": (f"{outside / 'x_poses.npy'},0,50", "path_outside_root"),
        "000202": ("./pose_data/KIT/rt/linked_poses.npy,0,50", "path_outside_root"),
        "000203": ("./pose_data/KIT/rt/lying_poses.npy,0,50", "truncated_file"),
        "000204": ("./pose_data/KIT/rt/pickled_poses.npy,0,50", "unreadable_file"),
        "000205": ("./pose_data/KIT/rt/zero_poses.npy,0,50", "too_short"),
        "000206": ("./pose_data/KIT/rt/nanfps_poses.npy,0,50", "unreadable_file"),
        "000207": ("./pose_data/KIT/rt/members_poses.npy,0,50", "unreadable_file"),
        "000208": ("./pose_data/humanact12/humanact12/Plie.npy,0,-1", "truncated_file"),
        "000209": ("./pose_data/KIT/3/x_poses.npy,zero,fifty", "invalid_metadata"),
    }
    with open(amass / "index.csv", "a") as fh:
        for name, (row, _) in rows.items():
            fh.write(f"{row},{name}.npy\n")
        fh.write("./pose_data/KIT/3/short_row\n")  # no end_frame, no new_name
    short_row = f"index.csv:{len((amass / 'index.csv').read_text().splitlines())}"
    with open(amass / "train.txt", "a") as fh:
        fh.write("".join(f"{n}\nM{n}\n" for n in rows))
    expected = {twin: reason for name, (_, reason) in rows.items() for twin in (name, "M" + name)}
    expected[short_row] = "invalid_metadata"
    # AMASS captions live in amass.texts: one linked out of it
    (amass / "texts" / "M000001.txt").unlink()
    (amass / "texts" / "M000001.txt").symlink_to(outside / "caption.txt")
    expected["M000001"] = "path_outside_root"
    # Motion-X
    mx = motionx / "motion_data" / "smplx_322" / "humanml"
    mx_texts = motionx / "texts" / "semantic_label" / "humanml"
    good = next(mx.glob("0*.npy"))
    for name, reason in (("rt_out", "path_outside_root"), ("rt_lie", "truncated_file"), ("rt_zero", "too_short"),
                         ("rt_text_out", "path_outside_root")):  # fmt: skip
        (mx_texts / f"{name}.txt").write_text("a person moves.\n")
        expected[f"humanml/{name}"] = reason
    shutil.copy(good, outside / "mx.npy")
    (mx / "rt_out.npy").symlink_to(outside / "mx.npy")
    (mx / "rt_lie.npy").write_bytes(_lying_npy_bytes("<f4", (10**12, 322), bytes(4 * 322 * 3)))
    np.save(mx / "rt_zero.npy", np.zeros((0, 322), np.float32))
    shutil.copy(good, mx / "rt_text_out.npy")
    (mx_texts / "rt_text_out.txt").unlink()
    (mx_texts / "rt_text_out.txt").symlink_to(outside / "caption.txt")
    with open(motionx / "train.txt", "a") as fh:
        fh.write("".join(f"humanml/{n}\n" for n in ("rt_out", "rt_lie", "rt_zero", "rt_text_out")))
    out = d / "out"
    b = build(Sandbox(d, out), out, [f"amass={amass}", f"motionx={motionx}"], f"smpl.model_dir={d / 'body_models'}",
              f"amass.texts={amass / 'texts'}", validate=False)  # fmt: skip
    return b, expected


SMPL_CASES = ["000200", "000201", "000202", "000203", "000204", "000205", "000206", "000207", "000208", "000209",
              "M000001", "humanml/rt_out", "humanml/rt_lie", "humanml/rt_zero", "humanml/rt_text_out"]  # fmt: skip


@pytest.mark.parametrize("rid", SMPL_CASES)
def test_smpl_source_file(smpl_built, rid):
    b, expected = smpl_built
    for twin in (rid, "M" + rid) if rid.startswith("0") else (rid,):
        assert b.reasons.get(twin) == expected[twin], (twin, b.reasons.get(twin))


def test_a_broken_index_row_is_one_quarantine_row_not_a_failed_build(smpl_built):
    b, expected = smpl_built
    short = next(k for k in expected if k.startswith("index.csv:"))
    assert b.reasons.get(short) == "invalid_metadata"
    assert b.manifest["counts"]["motion"]  # the rest built
    assert "000001" not in b.reasons  # its twin's caption was refused, not the clip


def test_body_model_symlinked_out_of_its_folder_is_refused(tmp_path):
    from pipeline.synthetic_body import write_body_model

    models, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    write_body_model(elsewhere, "smplh", "male")
    models.mkdir()
    (models / "SMPLH_MALE.npz").symlink_to(elsewhere / "SMPLH_MALE.npz")
    tree = HumanML3DTree(tmp_path / "humanml3d", n=1)
    res = cli_inproc("build", "--out", tmp_path / "out", "--executor", "local", "--source", f"humanml3d={tree.root}",
                     "--set", f"smpl.model_dir={models}")  # fmt: skip
    assert_one_line_error(res, "smpl.model_dir", "resolves outside", "ingest.allowed_roots")
    res = cli_inproc("build", "--out", tmp_path / "out", "--executor", "local", "--source", f"humanml3d={tree.root}",
                     "--set", f"smpl.model_dir={models}", "--set", f"ingest.allowed_roots=[{elsewhere}]", "--dry-run")  # fmt: skip
    assert res.rc == 0, res.stderr
