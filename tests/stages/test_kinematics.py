"""HumanML3D featurization: exactness on the real sample, and properties on varied generated motion."""

import numpy as np
import pytest

from pipeline.synthetic_motion import ACTIONS, Segment, synthesize_joints
from schemas.motion import FEATURE_LAYOUT, PARENTS
from stages.kinematics import (
    DEFAULT_TARGET_OFFSETS,
    features_to_joints,
    joints_to_features,
    joints_to_features_batch,
    mirror_caption,
    mirror_joints,
    target_offsets_from_joints,
)
from tests.conftest import REAL_HUMANML3D

REAL_FEATURES = np.load(REAL_HUMANML3D / "new_joint_vecs" / "012314.npy")
REAL_JOINTS = np.load(REAL_HUMANML3D / "new_joints" / "012314.npy")


def test_features_to_joints_reproduces_real_new_joints():
    assert np.abs(features_to_joints(REAL_FEATURES) - REAL_JOINTS).max() < 1e-5


def test_joints_to_features_reproduces_real_new_joint_vecs():
    got = joints_to_features(REAL_JOINTS)
    assert got.shape == (169, 263) and got.dtype == np.float32
    err = np.abs(got - REAL_FEATURES[:169])
    assert err.mean() < 1e-3
    np.testing.assert_array_equal(got[:, FEATURE_LAYOUT["foot_contact"]], REAL_FEATURES[:169, FEATURE_LAYOUT["foot_contact"]])


def test_default_target_skeleton_is_humanml3ds():
    np.testing.assert_allclose(target_offsets_from_joints(REAL_JOINTS[0]), DEFAULT_TARGET_OFFSETS, atol=1e-5)


def _motion(seed: int) -> np.ndarray:
    """Varied motion: an action at some speed/turn, a random body size, heading and place."""
    rng = np.random.default_rng(seed)
    seg = Segment(ACTIONS[seed % len(ACTIONS)], float(rng.uniform(2.5, 6)), turn=("none", "left", "right")[seed % 3])
    return synthesize_joints([seg], rng).astype(np.float64)


def _yaw(joints, angle, shift):
    c, s = np.cos(angle), np.sin(angle)
    return joints @ np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]]) + np.asarray(shift)


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_recovery_gives_back_the_motion_whatever_its_size_heading_and_place(seed):
    joints = _motion(seed)  # generated on the target skeleton, at the origin, facing +Z
    rng = np.random.default_rng(100 + seed)
    moved = _yaw(joints * rng.uniform(0.7, 1.3), rng.uniform(-np.pi, np.pi), [rng.normal(0, 3), 0.2, rng.normal(0, 3)])
    recovered = features_to_joints(joints_to_features(moved))
    np.testing.assert_allclose(recovered, joints[:-1], atol=2e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_features_joints_features_round_trip(seed):
    f1 = joints_to_features(_motion(seed))
    j1 = features_to_joints(f1)
    f2 = joints_to_features(j1)
    # The motion itself survives the round trip exactly (to float noise), and so do heights and contacts.
    np.testing.assert_allclose(features_to_joints(f2), j1[:-1], atol=2e-4)
    for name in ("root_y", "foot_contact"):
        np.testing.assert_allclose(f2[:, FEATURE_LAYOUT[name]], f1[:-1, FEATURE_LAYOUT[name]], atol=1e-5)
    # Root-frame quantities move slightly: the reference smooths the facing direction over ±80 frames, and
    # the re-featurized clip has one frame less at its end, as the reference's own output would.
    np.testing.assert_allclose(f2, f1[:-1], atol=2e-2)


@pytest.mark.parametrize("seed", SEEDS)
def test_features_invariant_to_yaw_and_translation(seed):
    joints = _motion(seed)
    f = joints_to_features(joints)
    g = joints_to_features(_yaw(joints, 0.3 + seed, [5.0 - seed, 1.5, -2.0 * seed]))
    np.testing.assert_allclose(g, f, atol=2e-4)


def test_bones_take_the_target_lengths():
    joints = _motion(3) * 1.17
    j = features_to_joints(joints_to_features(joints))
    lengths = np.linalg.norm(j[:, 1:] - j[:, list(PARENTS[1:])], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(DEFAULT_TARGET_OFFSETS[1:], axis=-1), lengths.shape), atol=1e-4)


def test_batch_equals_clip_by_clip_and_threads_agree():
    clips = [_motion(s)[: 40 + 13 * s] for s in range(30)]
    single = [joints_to_features(c) for c in clips]
    for workers in (1, 2):
        batch = joints_to_features_batch(clips, workers=workers)
        assert [b.shape for b in batch] == [s.shape for s in single]
        for b, s in zip(batch, single, strict=True):
            np.testing.assert_allclose(b, s, atol=1e-5)


def test_features_to_joints_is_batched():
    batch = np.stack([REAL_FEATURES, REAL_FEATURES])
    assert features_to_joints(batch).shape == (2, 170, 22, 3)


def test_bad_joint_shapes_are_refused():
    with pytest.raises(ValueError, match="clip 0: joints must be"):
        joints_to_features(np.zeros((10, 24, 3)))
    with pytest.raises(ValueError, match="clip 0"):
        joints_to_features(np.zeros((1, 22, 3)))


def test_mirror_twice_is_identity_and_swaps_sides():
    j = _motion(4)
    np.testing.assert_array_equal(mirror_joints(mirror_joints(j)), j)
    m = mirror_joints(j)
    np.testing.assert_array_equal(m[:, 20, 0], -j[:, 21, 0])  # right wrist becomes the left one
    np.testing.assert_array_equal(m[:, 0], j[:, 0] * [-1, 1, 1])


@pytest.mark.parametrize(
    "text,mirrored",
    [
        ("a man kicks with his left leg.", "a man kicks with his right leg."),
        ("Left hand up, then turns right", "Right hand up, then turns left"),
        ("walks leftward and waves RIGHT-handed", "walks rightward and waves LEFT-handed"),
        ("kick/VERB left/ADJ leg/NOUN#0.0#0.0", "kick/VERB right/ADJ leg/NOUN#0.0#0.0"),
        ("the leftover box is lifted", "the leftover box is lifted"),
        ("spins clockwise", "spins clockwise"),
    ],
)
def test_mirror_caption(text, mirrored):
    assert mirror_caption(text) == mirrored
    assert mirror_caption(mirror_caption(text)) == text


def test_mirror_caption_spin_option():
    assert mirror_caption("turns clockwise, then counterclockwise", spin=True) == "turns counterclockwise, then clockwise"
