"""Builds from SMPL-family sources (AMASS-style and Motion-X), through the real smplx code on synthetic
body models: the same motion table as the HumanML3D ingest, with provenance, mirrors and quarantine."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config import ConfigError, load_config
from pipeline.sample_data import write_sample_smpl
from schemas.motion import PARENTS
from stages.kinematics import features_to_joints, joints_to_features, mirror_joints
from stages.smpl import BodyModels, amass_joints, humanml3d_crop, read_amass_npz
from tests.conftest import local_build


@pytest.fixture(scope="module")
def smpl_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl")
    write_sample_smpl(root, n_clips=8, seed=11)
    amass = root / "amass"
    # broken inputs: a missing AMASS file, a corrupt one, an M twin without a caption file, an id in no split
    with open(amass / "index.csv", "a") as fh:
        fh.write("./pose_data/KIT/9/gone_poses.npy,0,50,000100.npy\n")
        fh.write("./pose_data/KIT/9/corrupt_poses.npy,0,50,000101.npy\n")
        fh.write("./pose_data/KIT/3/" + next(p.name for p in (amass / "KIT/3").glob("*.npz")).replace(".npz", ".npy")
                 + ",0,60,000102.npy\n")  # fmt: skip
    (amass / "KIT" / "9").mkdir(parents=True)
    (amass / "KIT" / "9" / "corrupt_poses.npz").write_bytes(b"PK\x03\x04 not a zip")
    (amass / "texts" / "000102.txt").write_text("a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0\n")
    with open(amass / "train.txt", "a") as fh:
        fh.write("000100\nM000100\n000101\nM000101\n000102\n")  # M000102: in no split
    (amass / "texts" / "M000102.txt").unlink(missing_ok=True)
    return root


@pytest.fixture(scope="module")
def smpl_build(smpl_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("smpl_out") / "b"
    manifest = local_build(None, out, f"smpl.model_dir={smpl_tree / 'body_models'}",
                           f"amass.texts={smpl_tree / 'amass' / 'texts'}", "plan.unit_size=3",
                           sources=[f"amass={smpl_tree / 'amass'}", f"motionx={smpl_tree / 'motionx'}"])  # fmt: skip
    rows = [r for f in sorted((out / "motion").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    quarantine = [r for f in sorted((out / "quarantine").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return out, manifest, {r["motion_id"]: r for r in rows}, quarantine


def test_every_index_clip_and_its_mirror_is_accounted_for(smpl_build):
    out, manifest, rows, quarantine = smpl_build
    assert manifest["reconciliation"]["ok"]
    got = {r["record_id"]: r["reason"] for r in quarantine}
    assert got == {"000100": "missing_file", "M000100": "missing_file", "000101": "unreadable_file",
                   "M000101": "unreadable_file", "M000102": "no_split"}  # fmt: skip
    for k in range(8):
        assert f"{k:06d}" in rows and f"M{k:06d}" in rows
        assert f"humanml/{k:06d}" in rows and f"humanml/M{k:06d}" in rows
    assert rows["000102"]["texts"][0]["caption"] == "a person walks."
    assert manifest["stages"]["ingest_amass"]["clips_in"] == 8 * 2 + 5
    assert json.loads((out / "manifest.json").read_text())["counts"]["motion"]


def test_amass_rows_are_humanml3d_clips_with_provenance(smpl_tree, smpl_build):
    _, _, rows, _ = smpl_build
    index = [line.split(",") for line in (smpl_tree / "amass" / "index.csv").read_text().splitlines()[1:]]
    models = BodyModels(smpl_tree / "body_models")
    checked = 0
    for source_path, start, end, new_name in index[:8]:
        if "humanact12" in source_path:
            continue
        rid = new_name.removesuffix(".npy")
        rel = source_path.removeprefix("./pose_data/").replace(".npy", ".npz")
        clip, (first, _) = humanml3d_crop(amass_joints(read_amass_npz(smpl_tree / "amass" / rel), models),
                                          source_path, int(start), int(end))  # fmt: skip
        row = rows[rid]
        assert row["source"] == "amass" and row["source_path"] == rel and row["start_frame"] == first
        assert row["end_frame"] - row["start_frame"] == row["num_frames"] == len(clip) - 1
        assert first == (60 if "MPI_HDM05" in rel else 0) + int(start)  # 3 s leading trim for MPI_HDM05
        expected = features_to_joints(joints_to_features(clip))
        np.testing.assert_allclose(np.array(row["joints"]), expected, atol=1e-4)
        mirrored = features_to_joints(joints_to_features(mirror_joints(clip)))
        np.testing.assert_allclose(np.array(rows["M" + rid]["joints"]), mirrored, atol=1e-4)
        assert rows["M" + rid]["mirror_of"] == rid
        checked += 1
    assert checked >= 4


def test_mirrored_captions_swap_sides(smpl_build):
    _, _, rows, _ = smpl_build
    for rid, row in rows.items():
        if rid.startswith("M") and "left" in " ".join(t["caption"] for t in row["texts"]):
            twin = " ".join(t["caption"] for t in rows[rid[1:]]["texts"])
            assert "right" in twin


def test_motionx_rows(smpl_build):
    _, _, rows, _ = smpl_build
    row, twin = rows["humanml/000003"], rows["humanml/M000003"]
    assert row["fps"] == 20.0 and row["source"] == "motionx" and twin["mirror_of"] == "humanml/000003"
    assert row["texts"] == [{"caption": "a person moves around.", "tokens": [], "start": 0.0, "end": 0.0}]
    # the mirror file is the reflected motion: bone directions mirror each other frame by frame
    j, m = np.array(row["joints"]), np.array(twin["joints"])
    n = min(len(j), len(m))
    unit = lambda x: (x[:, 1:] - x[:, list(PARENTS[1:])]) / np.linalg.norm(  # noqa: E731
        x[:, 1:] - x[:, list(PARENTS[1:])], axis=-1, keepdims=True)
    np.testing.assert_allclose(unit(m[:n]), unit(mirror_joints(j[:n])), atol=1e-3)


def test_smpl_sources_need_a_body_model_folder(smpl_tree, tmp_path):
    with pytest.raises(ConfigError, match="smpl.model_dir: required for the amass source"):
        load_config(None, [], [f"amass={smpl_tree / 'amass'}"])
    with pytest.raises(ConfigError, match="amass.index"):
        load_config(None, [f"smpl.model_dir={smpl_tree / 'body_models'}"], [f"amass={tmp_path}"])


def test_same_id_from_two_sources_is_quarantined(smpl_tree, tmp_path):
    from pipeline.sample_data import write_sample_humanml3d

    write_sample_humanml3d(tmp_path / "h", n_motions=3, seed=1)
    m = local_build(None, tmp_path / "out", f"smpl.model_dir={smpl_tree / 'body_models'}",
                    sources=[f"humanml3d={tmp_path / 'h'}", f"amass={smpl_tree / 'amass'}"])  # fmt: skip
    assert m["quarantine_reasons"]["duplicate_id"] == 6  # 000000..000002 and their mirrors
    assert m["reconciliation"]["ok"]
