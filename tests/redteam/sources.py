"""Small real source trees for the red-team input cases (motion files, texts, ids, file system, videos): a
clean synthetic HumanML3D tree to which each case adds its hostile record, and one ``movid build`` in a
fresh process (the secret in its environment) over all of them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.sample_data import write_sample_humanml3d
from tests.redteam.harness import CliResult, Sandbox, cli, quarantine_reasons

__all__ = ["CAPTION", "Built", "HumanML3DTree", "build", "color_video"]

CAPTION = b"a person walks forward.#a/DET person/NOUN walk/VERB forward/ADV#0.0#0.0\n"


class HumanML3DTree:
    """A synthetic HumanML3D tree (``n`` clips and their mirrors) and one clean clip's arrays to copy."""

    def __init__(self, root: Path, n: int = 3, seed: int = 11):
        self.root = Path(root)
        write_sample_humanml3d(self.root, n_motions=n, seed=seed)
        self.features = np.load(self.root / "new_joint_vecs" / "000000.npy")
        self.joints = np.load(self.root / "new_joints" / "000000.npy")

    def list_id(self, mid: str, split: str = "train") -> None:
        with open(self.root / f"{split}.txt", "a", encoding="utf-8") as fh:
            fh.write(mid + "\n")

    def add(self, mid: str, features=None, joints=None, text: bytes | None = CAPTION, split: str = "train") -> str:
        """A clip ``mid`` (clean arrays and caption unless given), listed in ``split``."""
        np.save(self.root / "new_joint_vecs" / f"{mid}.npy", self.features if features is None else features)
        np.save(self.root / "new_joints" / f"{mid}.npy", self.joints if joints is None else joints)
        if text is not None:
            (self.root / "texts" / f"{mid}.txt").write_bytes(text)
        self.list_id(mid, split)
        return mid

    def path(self, kind: str, mid: str) -> Path:
        folder, ext = {"features": ("new_joint_vecs", "npy"), "joints": ("new_joints", "npy"),
                       "text": ("texts", "txt")}[kind]  # fmt: skip
        return self.root / folder / f"{mid}.{ext}"


@dataclass
class Built:
    res: CliResult
    out: Path
    manifest: dict
    reasons: dict[str, str]


def build(sandbox: Sandbox, out: Path, sources: list[str], *sets: str, validate: bool = True) -> Built:
    """``movid build`` of ``sources`` into ``out`` in a fresh process (local executor), checked by the
    sandbox's invariants (reconciliation, nothing written outside ``out``, no secret, no traceback)."""
    before = sandbox.snapshot()
    argv = ["build", "--out", out, "--executor", "local", "--quiet"]
    for s in sources:
        argv += ["--source", s]
    for s in (*sets, *(() if validate else ("validation.enabled=false", "bench.enabled=false"))):
        argv += ["--set", s]
    res = cli(*argv)
    assert res.rc == 0, (res.rc, res.stderr[-3000:])
    manifest = sandbox.check_build(out, before, stderr=res.stderr)
    return Built(res, out, manifest, quarantine_reasons(out))


def color_video(path: Path, width: int, height: int, fps: float, seconds: float) -> Path:
    """A flat grey H.264 video from ffmpeg's lavfi source: tiny on disk whatever its frame size (an 8K
    frame of one colour compresses to almost nothing) or length."""
    from stages.media import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=gray:s={width}x{height}:r={fps}:d={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                    "-crf", "51", "-pix_fmt", "yuv420p", str(path)], check=True, capture_output=True)  # fmt: skip
    return path
