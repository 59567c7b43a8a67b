"""Reading a build's tables as Hugging Face ``datasets`` (offline, no custom loader), checked against the
manifest: the schema version must match, the files in the table's folder must be exactly the shards the
manifest lists (each a plain path inside ``OUT``), and the row counts must be the manifest's."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from pipeline import path_problem
from schemas import SCHEMA_VERSION, SCHEMA_VERSION_KEY
from schemas.manifest import load as load_manifest

__all__ = ["ShardMismatch", "load_table"]


class ShardMismatch(RuntimeError):
    pass


def load_table(out: str | Path, table: str, cache_dir: str | Path | None = None):
    """``datasets.DatasetDict`` of ``table`` (one entry per split), verified against the manifest."""
    import datasets

    out = Path(out)
    manifest = load_manifest(out)
    if manifest.schema_version != SCHEMA_VERSION:
        raise ShardMismatch(f"{out}: schema {manifest.schema_version}, this movid reads {SCHEMA_VERSION}")
    listed = sorted(s.path for s in manifest.shard_entries(table))
    for rel in listed:
        if problem := path_problem(out, rel):  # never opened
            raise ShardMismatch(f"{out}: the manifest lists the {table} shard {rel!r}, which is not read ({problem})")
    if (out / table).is_symlink():
        raise ShardMismatch(f"{out}/{table} is a symlink; movid reads only the folders it wrote")
    # datasets reads every data file in the folder: one the manifest does not list would be read as data
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / table).rglob("*") if p.is_file() or p.is_symlink())
    if unlisted := sorted(set(on_disk) - set(listed)):
        raise ShardMismatch(f"{out}/{table}: {unlisted[0]} is not a shard of the manifest ({len(unlisted)} such "
                            "file(s)); run `movid validate`")  # fmt: skip
    files = [out / rel for rel in listed]
    if not files:
        raise ShardMismatch(f"{out}/{table}: no shards")
    version = pq.read_schema(files[0]).metadata.get(SCHEMA_VERSION_KEY, b"").decode()
    if version != SCHEMA_VERSION:
        raise ShardMismatch(f"{files[0]}: schema version {version!r} in the footer, expected {SCHEMA_VERSION}")
    dd = datasets.load_dataset("parquet", data_dir=str(out / table), cache_dir=str(cache_dir) if cache_dir else None)
    expected = manifest.counts[table]
    # datasets infers split names from folder names and calls HumanML3D's "val" "validation".
    got = {("val" if split == "validation" else split): len(ds) for split, ds in dd.items()}
    if table in ("quarantine", "bench"):  # a flat folder: datasets names its one split "train"
        got = {"all": sum(got.values())}
    if got != expected:
        raise ShardMismatch(f"{out}/{table}: datasets sees {got} rows, the manifest says {expected}")
    return dd
