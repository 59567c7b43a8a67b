import hashlib

import numpy as np

from pipeline.sample_data import write_sample_humanml3d
from schemas.motion import FEATURE_LAYOUT, PARENTS
from stages.kinematics import mirror_joints


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_by_seed(tmp_path):
    write_sample_humanml3d(tmp_path / "a", 6, seed=1)
    write_sample_humanml3d(tmp_path / "b", 6, seed=1)
    write_sample_humanml3d(tmp_path / "c", 6, seed=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


def _recover_from_ric(f):
    """HumanML3D's recover_from_ric, written out here to check the generated features independently."""
    rot_vel = f[:, 0]
    ang = np.concatenate([[0.0], np.cumsum(rot_vel[:-1])])
    c, s = np.cos(2 * ang), np.sin(2 * ang)  # world → root is a rotation by 2·ang about Y
    to_world = np.stack([np.stack([c, 0 * c, -s], -1), np.stack([0 * c, 1 + 0 * c, 0 * c], -1),
                         np.stack([s, 0 * c, c], -1)], -2)  # fmt: skip
    vel = np.zeros((len(f), 3))
    vel[1:, [0, 2]] = f[:-1, 1:3]
    root = np.cumsum(np.einsum("tij,tj->ti", to_world, vel), axis=0)
    root[:, 1] = f[:, 3]
    ric = f[:, FEATURE_LAYOUT["ric"]].reshape(len(f), 21, 3)
    joints = np.einsum("tij,tkj->tki", to_world, ric)
    joints[..., [0, 2]] += root[:, None, [0, 2]]
    return np.concatenate([root[:, None], joints], axis=1)


def test_motion_is_plausible_and_features_consistent(clean_tree):
    for mid in ("000000", "000005", "M000005"):
        joints = np.load(clean_tree / "new_joints" / f"{mid}.npy")
        feats = np.load(clean_tree / "new_joint_vecs" / f"{mid}.npy")
        assert feats.shape == (len(joints), 263) and 40 <= len(joints) <= 196
        bones = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)
        assert np.ptp(bones, axis=0).max() < 1e-4  # rigid skeleton
        assert abs(joints[..., 1].min()) < 1e-4  # feet reach the floor, never below
        assert joints[0, 0, 1] > 0.7  # the pelvis is at hip height
        np.testing.assert_allclose(_recover_from_ric(feats), joints, atol=2e-3)


def test_mirror_twin_is_the_reflection(clean_tree):
    j = np.load(clean_tree / "new_joints" / "000003.npy")
    m = np.load(clean_tree / "new_joints" / "M000003.npy")
    # Both twins are retargeted to the (slightly asymmetric) target skeleton after mirroring, as in
    # HumanML3D, so the mirror holds for bone directions and, to the leg-length ratio, for the root path.
    mj = mirror_joints(j)
    unit = lambda x: (x[:, 1:] - x[:, list(PARENTS[1:])]) / np.linalg.norm(x[:, 1:] - x[:, list(PARENTS[1:])], axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(m), unit(mj), atol=1e-4)
    np.testing.assert_allclose(m[:, 0], mj[:, 0], rtol=0.02, atol=0.02)
    text, mtext = (clean_tree / "texts" / "000003.txt").read_text(), (clean_tree / "texts" / "M000003.txt").read_text()
    assert text.replace("left", "L").replace("right", "left").replace("L", "right") == mtext


def test_tree_layout_and_stats(clean_tree):
    ids = set((clean_tree / "all.txt").read_text().split())
    split_ids = [set((clean_tree / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")]
    assert ids == set.union(*split_ids) and sum(map(len, split_ids)) == len(ids) == 80
    assert all(("M" + i) in ids for i in ids if not i.startswith("M"))
    assert np.load(clean_tree / "Mean.npy").shape == (263,) and (np.load(clean_tree / "Std.npy") > 0).all()


def test_recovery_used_above_reproduces_real_humanml3d():
    from tests.conftest import REAL_HUMANML3D

    feats = np.load(REAL_HUMANML3D / "new_joint_vecs" / "012314.npy")
    joints = np.load(REAL_HUMANML3D / "new_joints" / "012314.npy")
    np.testing.assert_allclose(_recover_from_ric(feats.astype(np.float64)), joints, atol=1e-5)
