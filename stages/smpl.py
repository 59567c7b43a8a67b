"""SMPL-family bodies → HumanML3D joints.

Reads AMASS sequences (``.npz``: SMPL+H ``poses`` 156-d, SMPL-X ``poses`` 165-d, or SMPL-X "stage-ii"
files with separate ``root_orient``/``pose_body``/… keys) and Motion-X SMPL-X ``.npy`` (T × 322), runs the
real ``smplx`` body model, and applies HumanML3D's conventions (``raw_pose_processing.ipynb``): take
every ``int(fps / 20)``-th frame, swap Y and Z (AMASS is Z-up), trim the leading seconds of some AMASS
datasets, crop per ``index.csv``, negate X. Body-model files are licensed: the config points at them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from stages.source_files import SourceFileError, read_npy, read_npz
from stages.threads import apply_to_torch

__all__ = [
    "AMASS_TO_YUP",
    "BodyModelError",
    "BodyModels",
    "SmplFileError",
    "SmplParams",
    "amass_joints",
    "humanml3d_crop",
    "motionx_joints",
    "read_amass_npz",
    "read_motionx_npy",
]

log = logging.getLogger(__name__)
BODY_JOINTS = 22
HUMANML3D_FPS = 20.0
MOTIONX_FPS = 30.0  # Motion-X's SMPL-X files (its HumanML3D subset included) are at 30 fps
# Frames a motion file may hold when the caller gives no cap (ingest.max_file_frames is the configured one).
DEFAULT_MAX_FRAMES = 100_000
# HumanML3D multiplies AMASS joints (row vectors) by this: (x, y, z) → (x, z, y), making Y the up axis.
AMASS_TO_YUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
# Leading seconds HumanML3D drops from some AMASS datasets before cropping (calibration poses).
LEADING_TRIM_SECONDS = {"Eyes_Japan_Dataset": 3.0, "MPI_HDM05": 3.0, "TotalCapture": 1.0, "MPI_Limits": 1.0,
                        "Transitions_mocap": 0.5}  # fmt: skip
MOTIONX_LAYOUT = {"root_orient": (0, 3), "pose_body": (3, 66), "pose_hand": (66, 156), "pose_jaw": (156, 159),
                  "face_expr": (159, 209), "face_shape": (209, 309), "trans": (309, 312), "betas": (312, 322)}  # fmt: skip


class SmplFileError(ValueError):
    """A motion file that cannot be used; the message says why and ``reason`` is the quarantine code."""

    def __init__(self, detail: str, reason: str = "unreadable_file"):
        super().__init__(detail)
        self.reason = reason


class BodyModelError(ValueError):
    """A body-model file that is missing, of the wrong kind, or not trusted."""


@dataclass
class SmplParams:
    model_type: str  # smplh | smplx
    gender: str  # male | female | neutral
    fps: float
    root_orient: np.ndarray  # (T, 3) axis-angle
    pose_body: np.ndarray  # (T, 63)
    trans: np.ndarray  # (T, 3)
    betas: np.ndarray  # (B,) one body shape for the sequence
    pose_hand: np.ndarray | None = None  # (T, 90): left 45, right 45
    pose_jaw: np.ndarray | None = None  # (T, 3), SMPL-X
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.root_orient)

    def frames(self, index) -> SmplParams:
        pick = {k: (getattr(self, k)[index] if getattr(self, k) is not None else None)
                for k in ("root_orient", "pose_body", "trans", "pose_hand", "pose_jaw")}  # fmt: skip
        return replace(self, **pick)


def _gender(value) -> str:
    g = value.item() if isinstance(value, np.ndarray) else value
    g = g.decode() if isinstance(g, bytes) else str(g)
    g = g.strip().lower()
    return g if g in ("male", "female") else "neutral"


def _check(path, name: str, arr: np.ndarray, width: int) -> np.ndarray:
    if arr.ndim != 2 or arr.shape[1] != width:
        raise SmplFileError(f"{path}: {name} has shape {arr.shape}, expected (T, {width})")
    if not np.isfinite(arr).all():
        raise SmplFileError(f"{path}: {name} holds NaN/inf")
    return arr.astype(np.float32)


def _file_error(path, exc: SourceFileError) -> SmplFileError:
    detail = f"{path}: unreadable ({exc.detail})" if exc.reason == "unreadable_file" else exc.detail
    return SmplFileError(detail, reason=exc.reason)


def read_amass_npz(path: str | Path, max_frames: int = DEFAULT_MAX_FRAMES) -> SmplParams:
    """One AMASS sequence. Raises :class:`SmplFileError` naming the file and the problem. Every member's
    header is checked against its size before it is decompressed, and nothing pickled is loaded."""
    try:
        z = read_npz(Path(path), str(path), max_frames=max_frames)
    except SourceFileError as exc:
        raise _file_error(path, exc) from None
    keys = set(z)
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in keys), None)
    missing = [k for k in ("trans", "betas") if k not in keys] + ([] if fps_key else ["mocap_framerate"])
    if missing:
        raise SmplFileError(f"{path}: missing key(s) {', '.join(missing)} (not an AMASS motion file?)")
    try:
        fps = float(z[fps_key])
    except (TypeError, ValueError):
        raise SmplFileError(f"{path}: {fps_key} is not one number (shape {z[fps_key].shape})") from None
    gender = _gender(z["gender"]) if "gender" in keys else "neutral"
    trans, betas = z["trans"], np.asarray(z["betas"], np.float32).reshape(-1)
    if "root_orient" in keys and "pose_body" in keys:  # SMPL-X stage-ii layout
        p = SmplParams("smplx", gender, fps, _check(path, "root_orient", z["root_orient"], 3),
                       _check(path, "pose_body", z["pose_body"], 63), _check(path, "trans", trans, 3), betas,
                       pose_hand=_check(path, "pose_hand", z["pose_hand"], 90) if "pose_hand" in keys else None,
                       pose_jaw=_check(path, "pose_jaw", z["pose_jaw"], 3) if "pose_jaw" in keys else None)  # fmt: skip
    elif "poses" in keys:
        poses = z["poses"]
        width = poses.shape[1] if poses.ndim == 2 else None
        if width == 156:  # SMPL+H: root 3, body 63, hands 90
            model, hand, jaw = "smplh", poses[:, 66:156], None
        elif width == 165:  # SMPL-X: root 3, body 63, jaw 3, eyes 6, hands 90
            model, hand, jaw = "smplx", poses[:, 75:165], poses[:, 66:69]
        else:
            raise SmplFileError(f"{path}: poses has shape {poses.shape}; expected (T, 156) SMPL+H or (T, 165) SMPL-X")
        poses = _check(path, "poses", poses, width)
        p = SmplParams(model, gender, fps, poses[:, :3], poses[:, 3:66], _check(path, "trans", trans, 3), betas,
                       pose_hand=hand, pose_jaw=jaw)  # fmt: skip
    else:
        raise SmplFileError(f"{path}: no poses (neither 'poses' nor 'root_orient'/'pose_body')")
    if len(p.trans) != len(p):
        raise SmplFileError(f"{path}: {len(p)} pose frames but {len(p.trans)} translations")
    if not (math.isfinite(fps) and 0 < fps <= 10_000):
        raise SmplFileError(f"{path}: frame rate {fps}")
    return p


def read_motionx_npy(path: str | Path, fps: float = MOTIONX_FPS, max_frames: int = DEFAULT_MAX_FRAMES) -> SmplParams:
    """A Motion-X SMPL-X sequence, (T, 322): root_orient 3, pose_body 63, pose_hand 90, jaw 3, face_expr 50,
    face_shape 100, trans 3, betas 10. Motion-X stores it Y-up already, facing +Z at the start. The header
    is checked against the file size before anything is allocated."""
    try:
        a = read_npy(Path(path), str(path), max_frames=max_frames)
    except SourceFileError as exc:
        raise _file_error(path, exc) from None
    a = _check(path, "motion", a, 322)
    if len(a) == 0:
        raise SmplFileError(f"{path}: 0 frames", reason="too_short")
    col = {k: a[:, s:e] for k, (s, e) in MOTIONX_LAYOUT.items()}
    return SmplParams("smplx", "neutral", fps, col["root_orient"], col["pose_body"], col["trans"], col["betas"][0],
                      pose_hand=col["pose_hand"], pose_jaw=col["pose_jaw"],
                      extra={"face_expr": col["face_expr"]})  # fmt: skip


def _refuse_pickles(path: Path) -> None:
    """An .npz may still hold pickled objects (np.load would unpickle them with allow_pickle=True, as
    smplx does): read every member with pickles refused first."""
    try:
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                z[k]
    except ValueError as exc:
        raise BodyModelError(f"{path} holds pickled objects ({exc}); re-save it with plain arrays, or set "
                             "smpl.trusted_pickle=true if you trust it") from None  # fmt: skip


class BodyModels:
    """SMPL+H / SMPL-X models from ``model_dir`` (``SMPLH_MALE.npz``, ``SMPLX_NEUTRAL.npz``… in it or in a
    ``smplh``/``smplx`` sub-folder), each loaded once. Only the 22 body joints are computed."""

    def __init__(self, model_dir: str | Path, trusted_pickle: bool = False, num_betas: int = 10):
        self.model_dir = Path(model_dir)
        self.trusted_pickle = trusted_pickle
        self.num_betas = num_betas
        self._models: dict[tuple[str, str], object] = {}

    def path_for(self, model_type: str, gender: str) -> Path:
        stem = f"{model_type.upper()}_{gender.upper()}"
        tried = []
        for folder in (self.model_dir, self.model_dir / model_type):
            for ext in ("npz", "pkl"):
                p = folder / f"{stem}.{ext}"
                tried.append(str(p))
                if p.is_file():
                    return p
        raise BodyModelError(f"no {model_type} body model for gender {gender!r}; looked for {', '.join(tried)}")

    def get(self, model_type: str, gender: str):
        key = (model_type, gender)
        if key not in self._models:
            self._models[key] = self._load(model_type, gender)
        return self._models[key]

    def _load(self, model_type: str, gender: str):
        import smplx
        import torch

        try:
            path = self.path_for(model_type, gender)
        except BodyModelError:
            if gender != "male":  # HumanML3D uses the female model for every non-male sequence
                path = self.path_for(model_type, "female")
            else:
                raise
        if path.suffix == ".pkl" and not self.trusted_pickle:
            raise BodyModelError(f"{path} is a pickle, and unpickling runs code; convert it to .npz (see the "
                                 "README) or set smpl.trusted_pickle=true if you trust the file")  # fmt: skip
        if path.suffix == ".npz" and not self.trusted_pickle:
            _refuse_pickles(path)
        cls = {"smplh": smplx.SMPLH, "smplx": smplx.SMPLX}[model_type]
        kwargs = {"use_pca": False, "flat_hand_mean": True, "num_betas": self.num_betas, "ext": path.suffix[1:]}
        said = io.StringIO()
        with contextlib.redirect_stdout(said):  # smplx prints its warnings; keep them in the log
            model = cls(str(path), **kwargs).eval()
        for line in said.getvalue().splitlines():
            log.debug("smplx (%s): %s", path.name, line)

        class BodyJointsOnly(torch.nn.Module):
            """Skip smplx's extra keypoints picked from mesh vertices: HumanML3D uses the 22 body joints."""

            def forward(self, vertices, joints):
                return joints

        model.vertex_joint_selector = BodyJointsOnly()
        return model

    def joints(self, params: SmplParams, batch_size: int = 4096, full_forward: bool = False) -> np.ndarray:
        """(T, 22, 3) body joints in the file's own frame. Joints depend only on the body shape (regressed
        once per sequence) and the kinematic chain, so by default they are computed with smplx's own
        ``lbs`` pieces without posing the mesh; ``full_forward=True`` runs the whole smplx forward pass
        (mesh included) and gives the same joints, many times slower."""
        import torch
        from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints

        apply_to_torch(torch)  # a worker's intra-op threads, as its CPU allotment says (stages.threads)
        model = self.get(params.model_type, params.gender)
        betas = np.zeros(self.num_betas, np.float32)
        n = min(self.num_betas, len(params.betas))
        betas[:n] = params.betas[:n]
        betas_t = torch.as_tensor(betas)[None]
        out = []
        with torch.no_grad():
            rest_joints = vertices2joints(model.J_regressor, model.v_template[None] + blend_shapes(betas_t, model.shapedirs))
            for s in range(0, len(params), batch_size):
                sl = slice(s, s + batch_size)
                b = len(params.root_orient[sl])
                t = functools.partial(_batch, sl=sl, rows=b)
                hand = t(params.pose_hand, 90)
                if full_forward:
                    kw = {"betas": betas_t.expand(b, -1), "global_orient": t(params.root_orient, 3),
                          "body_pose": t(params.pose_body, 63), "left_hand_pose": hand[:, :45],
                          "right_hand_pose": hand[:, 45:], "transl": t(params.trans, 3)}  # fmt: skip
                    if params.model_type == "smplx":
                        kw |= {"jaw_pose": t(params.pose_jaw, 3), "leye_pose": torch.zeros(b, 3),
                               "reye_pose": torch.zeros(b, 3), "expression": torch.zeros(b, model.num_expression_coeffs)}  # fmt: skip
                    out.append(model(**kw).joints[:, :BODY_JOINTS].numpy())
                    continue
                # smplx's pose order: root, body, (jaw, eyes for SMPL-X), left hand, right hand
                face = [t(params.pose_jaw, 3), torch.zeros(b, 6)] if params.model_type == "smplx" else []
                full_pose = torch.cat([t(params.root_orient, 3), t(params.pose_body, 63), *face, hand], dim=1)
                full_pose = full_pose + model.pose_mean
                rot = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(b, -1, 3, 3)
                posed, _ = batch_rigid_transform(rot, rest_joints.expand(b, -1, -1), model.parents)
                out.append((posed[:, :BODY_JOINTS] + t(params.trans, 3)[:, None]).numpy())
        return np.concatenate(out) if out else np.zeros((0, BODY_JOINTS, 3), np.float32)


def _batch(a: np.ndarray | None, width: int, *, sl: slice, rows: int):
    """Rows ``sl`` of a parameter array as a float32 tensor; zeros where the file has no such parameter."""
    import torch

    return torch.as_tensor(np.zeros((rows, width), np.float32) if a is None else np.ascontiguousarray(a[sl], np.float32))


def amass_joints(params: SmplParams, models: BodyModels, target_fps: float = HUMANML3D_FPS) -> np.ndarray:
    """HumanML3D's ``amass_to_pose``: every ``int(fps / 20)``-th frame (so 250 fps data ends at 20.8 fps, as
    in the reference), the body model, then Y and Z swapped."""
    stride = int(params.fps / target_fps)
    if stride < 1:
        raise SmplFileError(f"frame rate {params.fps} is below {target_fps} fps")
    return models.joints(params.frames(slice(None, None, stride))) @ AMASS_TO_YUP


def motionx_joints(params: SmplParams, models: BodyModels, target_fps: float = HUMANML3D_FPS) -> np.ndarray:
    """Motion-X joints (already Y-up) resampled to ``target_fps`` by linear interpolation in time."""
    joints = models.joints(params)
    if params.fps == target_fps or len(joints) < 2:
        return joints
    t_src = np.arange(len(joints)) / params.fps
    t_dst = np.arange(int(np.floor(t_src[-1] * target_fps)) + 1) / target_fps
    flat = joints.reshape(len(joints), -1)
    out = np.stack([np.interp(t_dst, t_src, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    return out.reshape(len(t_dst), BODY_JOINTS, 3).astype(np.float32)


def humanml3d_crop(joints: np.ndarray, source_path: str, start_frame: int, end_frame: int,
                   fps: float = HUMANML3D_FPS) -> tuple[np.ndarray, tuple[int, int]]:  # fmt: skip
    """HumanML3D's per-clip crop (index.csv): humanact12 sources are used whole; others lose the leading
    seconds of their dataset, are sliced ``[start_frame:end_frame]`` with Python's slice rules (so the
    index's ``-1`` drops the last frame, exactly as the reference does), and get X negated.
    Returns the clip and the frames it covers in the 20-fps sequence, [first, stop)."""
    n = len(joints)
    if "humanact12" in source_path:
        return joints.copy(), (0, n)
    trim = next((int(sec * fps) for name, sec in LEADING_TRIM_SECONDS.items() if name in source_path), 0)
    first, stop, _ = slice(start_frame, end_frame).indices(max(n - trim, 0))
    clip = joints[trim:][start_frame:end_frame].copy()
    clip[..., 0] *= -1
    return clip, (trim + first, trim + max(stop, first))
