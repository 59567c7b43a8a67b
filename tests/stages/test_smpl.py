"""SMPL+H / SMPL-X extraction through the real smplx code, on synthetic body models in the real format."""

import numpy as np
import pytest

from pipeline.synthetic_body import (
    body_model_arrays,
    write_amass_motion,
    write_body_model,
    write_motionx_motion,
)
from pipeline.synthetic_motion import Segment, forward_kinematics
from schemas.motion import FEATURE_LAYOUT
from stages.kinematics import joints_to_features
from stages.smpl import (
    BodyModelError,
    BodyModels,
    SmplFileError,
    amass_joints,
    humanml3d_crop,
    motionx_joints,
    read_amass_npz,
    read_motionx_npy,
)

SEGMENTS = [Segment("walk", 3.0, turn="left"), Segment("wave", 2.0, side="left")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("body_models")
    for model_type in ("smplh", "smplx"):
        for gender in ("male", "female", "neutral"):
            write_body_model(folder, model_type, gender)
    return BodyModels(folder)


@pytest.mark.parametrize("model_type", ["smplh", "smplx"])
def test_amass_extraction_gives_back_the_motion(models, tmp_path, model_type):
    path = tmp_path / "KIT" / "3" / "walk_poses.npz"
    local, root = write_amass_motion(path, SEGMENTS, np.random.default_rng(1), model_type=model_type, fps=120)
    params = read_amass_npz(path)
    assert (params.model_type, params.gender, params.fps, len(params)) == (model_type, "male", 120.0, len(root))
    joints = amass_joints(params, models)
    assert len(joints) == len(range(0, len(root), 6))  # 120 fps → every 6th frame
    clip, frames = humanml3d_crop(joints, "./pose_data/KIT/3/walk_poses.npy", 0, 10**6)
    np.testing.assert_allclose(clip, forward_kinematics(local, root)[::6], atol=1e-5)
    assert frames == (0, len(joints))


def test_body_shape_scales_bones_and_featurization_undoes_it(models, tmp_path):
    rng = np.random.default_rng(2)
    write_amass_motion(tmp_path / "a.npz", SEGMENTS, np.random.default_rng(2), betas=np.r_[0.0, np.zeros(15)])
    write_amass_motion(tmp_path / "b.npz", SEGMENTS, np.random.default_rng(2), betas=np.r_[3.0, rng.normal(size=15)])
    a, b = (amass_joints(read_amass_npz(tmp_path / n), models) for n in ("a.npz", "b.npz"))
    thigh = lambda j: np.linalg.norm(j[:, 4] - j[:, 1], axis=-1)  # noqa: E731
    np.testing.assert_allclose(thigh(b) / thigh(a), 1.15, rtol=1e-4)  # beta 0 = 3 → 15 % larger
    # Retargeting gives both the target bone lengths: joint rotations and root-relative horizontal
    # positions agree; the root path itself is rescaled by the leg ratio (as the reference does).
    fa, fb = joints_to_features(a), joints_to_features(b)
    np.testing.assert_allclose(fa[:, FEATURE_LAYOUT["rot6d"]], fb[:, FEATURE_LAYOUT["rot6d"]], atol=1e-4)
    ric = lambda f: f[:, FEATURE_LAYOUT["ric"]].reshape(len(f), 21, 3)[..., [0, 2]]  # noqa: E731
    np.testing.assert_allclose(ric(fa), ric(fb), atol=1e-4)


def test_motionx_extraction_and_resampling(models, tmp_path):
    local, root = write_motionx_motion(tmp_path / "m.npy", SEGMENTS, np.random.default_rng(3), fps=30)
    params = read_motionx_npy(tmp_path / "m.npy")
    assert params.model_type == "smplx" and params.fps == 30
    np.testing.assert_allclose(models.joints(params), forward_kinematics(local, root), atol=1e-5)
    j20 = motionx_joints(params, models)
    assert len(j20) == int((len(root) - 1) / 30 * 20) + 1
    np.testing.assert_allclose(j20[::2], forward_kinematics(local, root)[::3], atol=1e-5)  # shared instants


def test_crop_follows_the_reference():
    joints = np.arange(200 * 22 * 3, dtype=np.float32).reshape(200, 22, 3)
    clip, frames = humanml3d_crop(joints, "./pose_data/MPI_HDM05/dg/x_poses.npy", 10, 50)
    np.testing.assert_array_equal(clip, joints[70:110] * np.array([-1, 1, 1]))  # 3 s trim, then [10:50]
    assert frames == (70, 110)
    clip, frames = humanml3d_crop(joints, "./pose_data/KIT/1/y_poses.npy", 5, -1)
    assert len(clip) == 194 and frames == (5, 199)  # -1 drops the last frame, as the reference's slice does
    clip, frames = humanml3d_crop(joints[:, :22], "./pose_data/humanact12/humanact12/P1.npy", 0, -1)
    np.testing.assert_array_equal(clip, joints) and frames == (0, 200)  # humanact12: whole, no X flip
    clip, frames = humanml3d_crop(joints, "./pose_data/Transitions_mocap/t.npy", 0, 5)
    np.testing.assert_array_equal(clip[:, :, 1], joints[10:15, :, 1])  # 0.5 s = 10 frames


def test_pickled_models_are_refused_unless_trusted(tmp_path):
    (tmp_path / "SMPLH_MALE.pkl").write_bytes(b"\x80\x04not really")
    with pytest.raises(BodyModelError, match="unpickling runs code"):
        BodyModels(tmp_path).get("smplh", "male")
    arrays = body_model_arrays("smplh") | {"note": np.array([{"evil": 1}], dtype=object)}
    np.savez(tmp_path / "SMPLH_FEMALE.npz", **arrays)
    with pytest.raises(BodyModelError, match="holds pickled objects"):
        BodyModels(tmp_path).get("smplh", "female")
    assert BodyModels(tmp_path, trusted_pickle=True).get("smplh", "female") is not None


def test_missing_model_names_the_files(tmp_path):
    with pytest.raises(BodyModelError, match="SMPLX_MALE.npz"):
        BodyModels(tmp_path).get("smplx", "male")


def test_neutral_falls_back_to_female_like_humanml3d(tmp_path):
    write_body_model(tmp_path, "smplh", "female")
    assert BodyModels(tmp_path).get("smplh", "neutral") is not None


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"poses": np.zeros((5, 156)), "betas": np.zeros(16)}, "missing key"),
        ({"poses": np.zeros((5, 100)), "trans": np.zeros((5, 3)), "betas": np.zeros(16),
          "mocap_framerate": np.array(60.0)}, r"expected \(T, 156\)"),
        ({"poses": np.full((5, 156), np.nan), "trans": np.zeros((5, 3)), "betas": np.zeros(16),
          "mocap_framerate": np.array(60.0)}, "NaN"),
        ({"poses": np.zeros((5, 156)), "trans": np.zeros((4, 3)), "betas": np.zeros(16),
          "mocap_framerate": np.array(60.0)}, "5 pose frames but 4"),
    ],
)
def test_bad_amass_files_say_why(tmp_path, arrays, message):
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(SmplFileError, match=message):
        read_amass_npz(tmp_path / "x.npz")


def test_unreadable_files(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"nope")
    with pytest.raises(SmplFileError, match="unreadable"):
        read_amass_npz(tmp_path / "x.npz")
    np.save(tmp_path / "m.npy", np.zeros((4, 300)))
    with pytest.raises(SmplFileError, match=r"expected \(T, 322\)"):
        read_motionx_npy(tmp_path / "m.npy")


@pytest.mark.parametrize("model_type", ["smplh", "smplx"])
def test_joint_shortcut_equals_the_full_smplx_forward(tmp_path, model_type):
    write_body_model(tmp_path, model_type, "female", n_vertices=300)
    rng = np.random.default_rng(5)
    write_amass_motion(tmp_path / "s.npz", SEGMENTS, rng, model_type=model_type, gender="female", fps=20,
                       betas=rng.normal(size=16))  # fmt: skip
    params = read_amass_npz(tmp_path / "s.npz")
    params.pose_hand = rng.normal(0, 0.3, (len(params), 90)).astype(np.float32)  # hands must not move the body
    models = BodyModels(tmp_path)
    fast, full = models.joints(params, batch_size=64), models.joints(params, batch_size=64, full_forward=True)
    np.testing.assert_allclose(fast, full, atol=1e-5)
