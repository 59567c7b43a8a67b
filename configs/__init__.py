"""movid's prompts and presets, shipped inside the package (read with ``importlib.resources``), so a movid
installed from a wheel builds and trains like a checkout: ``prompts/`` holds the versioned annotation and
judge prompts, ``demo.yaml`` the build preset of ``make demo``, ``train/`` the trainer's presets.

A preset is named by a path (``configs/train/tiny_demo.yaml``, as the README and Makefile write it, read from
the working directory when it is there) or by its name (``tiny_demo``); ``find_preset`` resolves either,
falling back to the packaged copy. This package imports nothing of movid (it is data).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["PROMPTS_DIR", "find_preset", "package_dir"]


def package_dir() -> Path:
    """The installed folder of this package (a wheel installs it unzipped, so it is a real folder)."""
    root = files(__name__)
    if not isinstance(root, Path):
        raise RuntimeError(f"movid's configs package is not a folder on disk ({root!r}); install movid unzipped")
    return root


PROMPTS_DIR = package_dir() / "prompts"


def find_preset(spec: str | Path, folder: str = "") -> Path | None:
    """The preset file ``spec`` names: an existing file as given; else a packaged preset, by name (``tiny_demo``
    in ``folder``, e.g. ``train``) or by its path under ``configs/`` (``configs/train/tiny_demo.yaml`` from
    any working directory). None when there is no such preset (the caller names the key in its error)."""
    path = Path(spec)
    if path.is_file():
        return path
    root = package_dir()
    if path.parts[:1] == ("configs",):  # the path a checkout uses, asked from another folder
        candidate = root.joinpath(*path.parts[1:])
    elif len(path.parts) == 1 and not path.suffix:  # a bare name
        candidate = root / folder / f"{path.name}.yaml"
    else:
        return None
    return candidate if candidate.is_file() else None
