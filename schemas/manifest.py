"""The manifest of a finished build (``OUT/manifest.json``) as the readers see it: one typed ``Manifest`` and one
loader, ``load(out)``, used by every command and by the trainer. A missing or corrupt manifest is one
``ManifestError`` whose one-line message names the file and says what to do.

The build writes the file (``pipeline/manifest.py``); this module never writes it, so its bytes are the
writer's alone. The loader checks the shape the readers rely on (an object; ``shards`` a list of objects;
``counts`` a mapping of mappings), not the content: ``movid validate`` checks every shard entry against the
files and reports each tampered one by itself, so an entry is kept as written (``ShardEntry.parse`` is the
typed view a reader asks for).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

__all__ = ["MANIFEST_FILE", "Manifest", "ManifestError", "ShardEntry", "has_manifest", "load", "manifest_path"]

MANIFEST_FILE = "manifest.json"


class ManifestError(ValueError):
    """No manifest, or one that is not a movid manifest; the message is one line naming the file."""


@dataclass(frozen=True)
class ShardEntry:
    """One shard the manifest lists: its table, split (``_`` for flat tables), path under ``OUT``, rows, size
    and sha256."""

    table: str
    split: str
    path: str
    rows: int
    bytes: int
    sha256: str

    @classmethod
    def parse(cls, entry: dict) -> ShardEntry:
        try:
            return cls(**{f.name: entry[f.name] for f in fields(cls)})
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"a shard entry without {exc} ({str(entry)[:120]})") from None


@dataclass
class Manifest:
    """The fields of ``manifest.json`` that movid reads; ``raw`` is the whole object as written."""

    schema_version: str
    shards: list[dict]  # entries as written (see ShardEntry.parse; validate checks each)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # table → split (or "all") → rows
    code_version: str = ""
    config_hash: str = ""
    config: dict = field(default_factory=dict)  # the build config as a mapping (pipeline.config reads it)
    sources: list[dict] = field(default_factory=list)  # {kind, path}
    stages: dict[str, dict[str, int]] = field(default_factory=dict)  # stage → counter → total
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    reconciliation: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    annotator: dict = field(default_factory=dict)
    bench: dict | None = None
    requeue: dict = field(default_factory=dict)  # the last movid requeue: round, reasons, units, records
    raw: dict = field(default_factory=dict, repr=False)

    def shard_entries(self, table: str, split: str | None = None) -> list[ShardEntry]:
        """The typed entries of one table (and split), in the manifest's order."""
        entries = (ShardEntry.parse(s) for s in self.shards)
        return [s for s in entries if s.table == table and (split is None or s.split == split)]

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """The manifest ``data`` (parsed JSON) describes; ManifestError when its shape is not a manifest's."""
        if not isinstance(data, dict):
            raise ManifestError(f"not a manifest (a JSON {type(data).__name__}, not an object)")
        shards, counts = data.get("shards"), data.get("counts", {})
        if not isinstance(shards, list) or not all(isinstance(s, dict) for s in shards):
            raise ManifestError("not a manifest (no list of shards)")
        if not isinstance(counts, dict) or not all(isinstance(c, dict) for c in counts.values()):
            raise ManifestError("not a manifest (counts is not a mapping of tables)")
        known = {f.name for f in fields(cls)} - {"raw"}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.setdefault("schema_version", "")
        return cls(**kwargs, raw=data)


def manifest_path(out: str | Path) -> Path:
    return Path(out) / MANIFEST_FILE


def has_manifest(out: str | Path) -> bool:
    """Whether ``OUT`` holds a manifest file (a finished build), without reading it."""
    return manifest_path(out).is_file()


def load(out: str | Path) -> Manifest:
    """The manifest of the finished build in ``out``. ManifestError (one line): no manifest (the build is not
    finished), or a file that is not JSON or not a manifest (``movid validate`` says more)."""
    path = manifest_path(out)
    if not path.is_file():
        raise ManifestError(f"{out} has no {MANIFEST_FILE}: the build is not finished (run or resume movid build)")
    try:
        data = json.loads(path.read_bytes())
    except ValueError as exc:  # (JSONDecodeError and UnicodeDecodeError are ValueErrors)
        raise ManifestError(f"{path} is not valid JSON ({' '.join(str(exc).split())[:160]}); run movid validate"
                            ) from None  # fmt: skip
    try:
        return Manifest.from_dict(data)
    except ManifestError as exc:
        raise ManifestError(f"{path}: {exc}; run movid validate") from None
