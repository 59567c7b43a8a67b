"""HumanML3D's own feature code, loaded at run time from a checkout the user fetched (never part of movid).

    from bench.humanml3d_reference import load_reference
    ref = load_reference("/path/to/HumanML3D")      # git clone https://github.com/EricGuo5513/HumanML3D
    features = ref.features(joints)                 # process_file(joints, 0.002)[0]
    joints_back = ref.recover_from_ric(features)

The reference keeps ``process_file``, ``uniform_skeleton`` and ``recover_from_ric`` in code cells of
``motion_representation.ipynb``, beside ``common/`` and ``paramUtil.py``. The loader puts the checkout on
``sys.path``, runs the notebook's code cells made only of imports and function definitions (the cells
that walk a dataset are skipped), and sets the globals that its ``__main__`` cell would have set: joint
indices (taken from ``stages.kinematics``), the raw offsets and chains of ``paramUtil`` and the target
skeleton. The reference derives the target skeleton from an example clip (``000021``) that is not here;
it is fed movid's ``DEFAULT_TARGET_OFFSETS``, the same raw directions × bone lengths of HumanML3D's
uniform skeleton, in the float32 its ``Skeleton`` would hold. Old numpy aliases it uses (``np.float``)
are shimmed here, the reference's files are not edited.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.kinematics import DEFAULT_TARGET_OFFSETS, FEET_LEFT, FEET_RIGHT  # noqa: E402
from stages.kinematics_featurize import FACE_JOINTS, LEG_JOINTS  # noqa: E402

__all__ = ["HumanML3DReference", "load_reference"]

NOTEBOOK = "motion_representation.ipynb"
REQUIRED = (NOTEBOOK, "paramUtil.py", "common/quaternion.py", "common/skeleton.py")
# numpy aliases removed in numpy 1.24 that the reference's modules still use at import time.
_NUMPY_ALIASES = {"float": float, "int": int, "bool": bool, "object": object}


@dataclass(frozen=True)
class HumanML3DReference:
    """The reference's functions, run from ``checkout`` (its commit when it is a git checkout)."""

    checkout: Path
    commit: str | None
    namespace: dict[str, Any]

    def process_file(self, joints: np.ndarray, feet_thre: float = 0.002) -> tuple:
        """The reference's ``process_file`` as is: (data, global positions, positions, l_velocity)."""
        return self.namespace["process_file"](np.array(joints, copy=True), feet_thre)

    def features(self, joints: np.ndarray, feet_thre: float = 0.002) -> np.ndarray:
        """(T, 22, 3) joints → the reference's (T - 1, 263) ``new_joint_vecs``."""
        return self.process_file(joints, feet_thre)[0]

    def recover_from_ric(self, features: np.ndarray) -> np.ndarray:
        """(T, 263) → (T, 22, 3): the reference's ``new_joints``, called as its notebook calls it."""
        torch = self.namespace["torch"]
        data = torch.from_numpy(np.asarray(features)).unsqueeze(0).float()
        return self.namespace["recover_from_ric"](data, self.namespace["joints_num"]).squeeze(0).numpy()


def _definition_cells(notebook: Path) -> list[str]:
    """Sources of the code cells holding only imports and function definitions."""
    cells = json.loads(notebook.read_text())["cells"]
    keep = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            body = ast.parse(source).body
        except SyntaxError:
            continue  # notebook magics; the definitions we need are plain Python
        if body and all(isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef) for node in body):
            keep.append(source)
    return keep


def _commit(checkout: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def load_reference(checkout: str | Path, commit: str | None = None) -> HumanML3DReference:
    """Load HumanML3D's feature code from a local checkout of its repository (see the module docstring).
    ``commit`` names the checkout's commit where it is not a git work tree (e.g. an exported copy)."""
    root = Path(checkout).resolve()
    missing = [name for name in REQUIRED if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} is not a HumanML3D checkout: missing {', '.join(missing)}")
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    namespace: dict[str, Any] = {"__name__": "humanml3d_reference"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.filters, torch.cross without dim
        for source in _definition_cells(root / NOTEBOOK):
            exec(compile(source, str(root / NOTEBOOK), "exec"), namespace)
    for name in ("process_file", "uniform_skeleton", "recover_from_ric", "t2m_raw_offsets", "t2m_kinematic_chain"):
        if name not in namespace:
            raise RuntimeError(f"{root / NOTEBOOK}: the reference no longer defines {name!r}")
    torch = namespace["torch"]
    namespace.update(
        l_idx1=LEG_JOINTS[0], l_idx2=LEG_JOINTS[1],
        fid_l=list(FEET_LEFT), fid_r=list(FEET_RIGHT),
        face_joint_indx=list(FACE_JOINTS), r_hip=FACE_JOINTS[0], l_hip=FACE_JOINTS[1], joints_num=22,
        n_raw_offsets=torch.from_numpy(namespace["t2m_raw_offsets"]),
        kinematic_chain=namespace["t2m_kinematic_chain"],
        tgt_offsets=torch.from_numpy(DEFAULT_TARGET_OFFSETS.astype(np.float32)),
    )  # fmt: skip
    return HumanML3DReference(root, commit or _commit(root), namespace)
