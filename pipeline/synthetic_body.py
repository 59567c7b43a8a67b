"""Synthetic SMPL+H / SMPL-X body models and motion files, for tests and sample data.

The models have the real file format (same keys, kinematic trees and joint counts as the licensed
``SMPLH_*.npz`` / ``SMPLX_*.npz``) but one vertex per joint, placed on movid's rest skeleton, so the real
``smplx`` code runs on them in milliseconds. Shape coefficient 0 scales the body uniformly (5 % per unit).
Motions are the synthetic generator's rotations written as AMASS ``.npz`` (Z-up, like AMASS) or Motion-X
``.npy`` (Y-up, 322 columns).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.synthetic_motion import OFFSETS, Segment, synthesize_pose
from schemas.motion import PARENTS
from stages.rotations import matrix_to_axis_angle
from stages.smpl import MOTIONX_LAYOUT

__all__ = ["AMASS_FROM_YUP", "body_model_arrays", "write_amass_motion", "write_body_model", "write_motionx_motion"]

# Maps movid's Y-up frame G to an AMASS-like Z-up frame A, chosen so that HumanML3D's processing
# (swap Y and Z, then negate X) brings A back to G exactly. A proper rotation (det +1).
AMASS_FROM_YUP = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
_FINGERS = 5  # chains of 3 joints per hand


def _parents(model_type: str) -> list[int]:
    parents = list(PARENTS)
    if model_type == "smplx":
        parents += [15, 15, 15]  # jaw, left eye, right eye
    for wrist in (20, 21):
        base = len(parents)
        for f in range(_FINGERS):
            parents += [wrist, base + 3 * f, base + 3 * f + 1]
    return parents


def body_model_arrays(model_type: str, n_shape: int = 16, n_vertices: int = 0) -> dict[str, np.ndarray]:
    """``n_vertices`` > joints pads the mesh to a real model's size (6,890 for SMPL+H, 10,475 for SMPL-X)
    so that timings of the skinning are representative; the extra vertices follow the pelvis."""
    parents = _parents(model_type)
    n = len(parents)  # 52 for SMPL+H, 55 for SMPL-X
    rest = np.zeros((n, 3))
    for j in range(1, 22):
        rest[j] = rest[parents[j]] + OFFSETS[j]
    for j in range(22, n):
        rest[j] = rest[parents[j]] + np.array([0.0, -0.03, 0.01 * (j % 3)])  # fingers, jaw, eyes: small bones
    v = np.concatenate([rest, rest[:4] + 0.05])  # one vertex per joint, and a few to make faces of
    if n_vertices > len(v):
        v = np.concatenate([v, np.random.default_rng(0).normal(0, 0.2, (n_vertices - len(v), 3))])
    shapedirs = np.zeros((len(v), 3, n_shape))
    shapedirs[:, :, 0] = 0.05 * v  # beta 0: uniform scale about the pelvis
    kintree = np.array([[-1] + parents[1:], list(range(n))], dtype=np.int64)
    kintree[0, 0] = 4294967295  # as the released files store the root's parent
    arrays = {
        "v_template": v, "f": np.array([[0, n, n + 1], [n + 1, n + 2, n + 3]], dtype=np.int64),
        "J_regressor": np.eye(n, len(v)), "weights": np.eye(len(v), n), "kintree_table": kintree,
        "shapedirs": shapedirs, "posedirs": np.zeros((len(v), 3, 9 * (n - 1)), np.float32),
        "hands_componentsl": np.eye(45), "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45), "hands_meanr": np.zeros(45),
    }  # fmt: skip
    arrays["weights"][n:, 0] = 1.0  # the face-making and padding vertices follow the pelvis
    if model_type == "smplx":
        arrays["shapedirs"] = np.concatenate([shapedirs[:, :, :10], np.zeros((len(v), 3, 10))], axis=2)
        arrays |= {"lmk_faces_idx": np.array([0, 1], dtype=np.int64), "lmk_bary_coords": np.full((2, 3), 1 / 3)}
    return arrays


def write_body_model(folder: str | Path, model_type: str, gender: str, n_vertices: int = 0) -> Path:
    """``folder/SMPLH_MALE.npz``-style file, as smplx names them."""
    path = Path(folder) / f"{model_type.upper()}_{gender.upper()}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **body_model_arrays(model_type, n_vertices=n_vertices))
    return path


def _pose_params(segments: list[Segment], rng: np.random.Generator, fps: float, to_file_frame: np.ndarray):
    local, root = synthesize_pose(segments, rng, fps)
    root_orient = matrix_to_axis_angle(to_file_frame @ local[:, 0])
    body = matrix_to_axis_angle(local[:, 1:22]).reshape(len(local), 63)
    return root_orient, body, root @ to_file_frame.T, (local, root)


def write_amass_motion(path: str | Path, segments: list[Segment], rng: np.random.Generator, *, fps: float = 120.0,
                       model_type: str = "smplh", gender: str = "male", betas: np.ndarray | None = None):  # fmt: skip
    """An AMASS ``.npz`` (SMPL+H ``poses`` 156-d, or SMPL-X ``poses`` 165-d). Returns the generator's
    (local rotations, root positions) in movid's Y-up frame, for checking what extraction gives back."""
    root_orient, body, trans, truth = _pose_params(segments, rng, fps, AMASS_FROM_YUP)
    T = len(trans)
    width = 156 if model_type == "smplh" else 165
    poses = np.zeros((T, width), np.float32)
    poses[:, :3], poses[:, 3:66] = root_orient, body
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, poses=poses, trans=trans.astype(np.float32), gender=np.array(gender),
             betas=np.zeros(16, np.float32) if betas is None else np.asarray(betas, np.float32),
             mocap_framerate=np.array(fps))  # fmt: skip
    return truth


def write_motionx_motion(path: str | Path, segments: list[Segment], rng: np.random.Generator, *, fps: float = 30.0,
                         betas: np.ndarray | None = None):  # fmt: skip
    """A Motion-X SMPL-X ``.npy`` (T × 322, Y-up). Returns the generator's (local rotations, root)."""
    root_orient, body, trans, truth = _pose_params(segments, rng, fps, np.eye(3))
    a = np.zeros((len(trans), 322), np.float32)
    for key, value in (("root_orient", root_orient), ("pose_body", body), ("trans", trans)):
        s, e = MOTIONX_LAYOUT[key]
        a[:, s:e] = value
    if betas is not None:
        s, e = MOTIONX_LAYOUT["betas"]
        a[:, s : s + len(betas)] = betas
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.save(path, a)
    return truth
