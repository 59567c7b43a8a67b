"""Validation of a whole build: table-level checks across every shard (at commit and in ``movid validate``)
and the full revalidation of a finished build, which trusts nothing its manifest says (shard paths must stay
inside ``OUT``; checksums, row counts, schema, unlisted files, the reconciliation recomputed; record-level
suites; table checks) and always leaves its verdict in ``OUT/validation/report.json``.

Table-level checks (great-expectations suites on id summaries; failures fail the build with a report):
duplicate ids across shards, split leakage — one source clip (with its mirror ``M`` twin and its sub-clips,
and the videos and conversations about it) in two splits — and references between tables (a video's or a
conversation's motion / video exists). Results go into the manifest and to Data Docs under
``OUT/validation/``.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.table_checks import DATA_DOCS, table_checks
from schemas.manifest import load as load_manifest

__all__ = ["DATA_DOCS", "revalidate", "table_checks"]

log = logging.getLogger(__name__)


# --- movid validate OUT --------------------------------------------------------------------------------
REPORT = "validation/report.json"
MAX_RECORD_PROBLEMS = 200


def revalidate(out: str | Path, *, show_progress: bool = True, wait: bool = False) -> dict:
    """Revalidate a finished build without trusting its manifest: every shard path must lie inside ``OUT``
    (one that does not is a finding and is never opened), every shard must be readable with the checksum,
    size, row count and schema the manifest gives, no file may sit in a table folder unlisted, the counts
    per table and split are recounted from the shards, and the reconciliation is recomputed from the stage
    counters (the units' own ``stats.json`` where the run state is there) and those shard rows; then the
    record-level suites on every shard and the table-level checks. Holds ``OUT``'s lock. Always writes
    ``OUT/validation/report.json`` (and Data Docs); ``report["ok"]`` is the verdict."""
    from pipeline.runstate import RunStateError, atomic_write_json, lock_out

    out = Path(out)
    with lock_out(out, "movid validate", wait=wait):  # (first: a build being replaced has no manifest for a while)
        if not (out / "manifest.json").is_file():
            raise RunStateError(f"{out} has no manifest.json — the build is not finished")
        if (out / "validation").is_symlink():  # movid's folder: a symlink there would take the report elsewhere
            (out / "validation").unlink()
        # a provisional verdict first: a run cut off midway must not leave an older "ok" behind
        atomic_write_json(out / REPORT, {"ok": False, "problems": [{"problem": "validation did not finish"}]})
        report = _revalidate(out, show_progress)
        atomic_write_json(out / REPORT, report)
    return report


def _revalidate(out: Path, show_progress: bool) -> dict:
    from tqdm.auto import tqdm

    problems: list[dict] = []
    records: Counter = Counter()
    rows: Counter = Counter()
    report = {"ok": False, "shards": 0, "rows": {}, "record_failures": {}, "problems": problems,
              "table_level": {"ok": False, "checks": {}}, "data_docs": f"{DATA_DOCS}/index.html"}  # fmt: skip
    try:
        manifest = load_manifest(out).raw  # (validate checks every entry itself: the raw mapping)
    except (OSError, ValueError) as exc:  # (ManifestError is a ValueError)
        problems.append({"problem": "manifest_invalid", "detail": str(exc)[:300]})
        return report
    cfg = _manifest_config(manifest, problems)
    good: list[dict] = []
    split_rows: Counter = Counter()
    for s in tqdm(manifest["shards"], desc="shards", unit="shard", disable=not show_progress):
        shard = _check_shard(out, s, manifest, problems)
        if shard is None:
            continue
        table, entry = shard
        good.append(entry)
        rows[entry["table"]] += table.num_rows
        split_rows[(entry["table"], "all" if entry["split"] == "_" else entry["split"])] += table.num_rows
        if cfg is not None and entry["table"] in ("motion", "video", "instruction") and table.num_rows:
            from stages.validate import validate_tables

            for r in validate_tables({entry["table"]: table}, cfg, source="revalidate").rejects:
                records[r.reason] += 1
                if len(problems) < MAX_RECORD_PROBLEMS:
                    problems.append({"shard": entry["path"], "record": r.record_id, "problem": r.reason, "detail": r.detail})
    listed = {s.get("path") for s in manifest["shards"] if isinstance(s, dict)}
    problems += _unlisted_files(out, listed)
    problems += _count_problems(manifest, split_rows)
    recomputed = _reconciliation(out, manifest, rows, problems)
    try:
        tables = table_checks(out, good)
    except Exception as exc:  # a check that cannot run is a finding, not a crash that leaves no report
        problems.append({"problem": "table_checks_failed", "detail": f"{type(exc).__name__}: {exc}"[:300]})
        tables = {"ok": False, "checks": {}}
    report |= {"ok": not problems and tables["ok"] and recomputed.get("ok", False),
               "shards": len(manifest["shards"]), "rows": dict(rows), "record_failures": dict(records),
               "table_level": tables, "reconciliation": recomputed}  # fmt: skip
    return report


def _manifest_config(manifest: dict, problems: list[dict]):
    from pipeline.config import ConfigError, build_config_from_dict

    try:
        return build_config_from_dict(manifest["config"])
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        problems.append({"problem": "config_invalid", "detail": f"the manifest's config: {exc}"[:300]})
        return None


def _check_shard(out: Path, s, manifest: dict, problems: list[dict]) -> tuple[pa.Table, dict] | None:
    """The shard's table when it passes the file-level checks; otherwise its problems are added."""
    from pipeline.runstate import path_problem
    from pipeline.shards import file_sha256
    from schemas import SCHEMA_VERSION_KEY, TABLES, SchemaMismatch, check_conforms

    keys = ("table", "split", "path", "rows", "bytes", "sha256")
    if not isinstance(s, dict) or any(k not in s for k in keys):
        problems.append({"shard": repr(s)[:200], "problem": "manifest_entry_invalid",
                         "detail": f"a shard entry needs {', '.join(keys)}"})  # fmt: skip
        return None
    rel = s["path"]
    if why := path_problem(out, rel):  # never opened
        kind = "outside_out" if "outside" in why else "symlink" if why.startswith("symlink") else "not_a_plain_path"
        problems.append({"shard": str(rel)[:200], "problem": kind, "detail": why})
        return None
    path = out / rel
    if not path.is_file():
        problems.append({"shard": rel, "problem": "missing"})
        return None
    try:
        if path.stat().st_size != s["bytes"] or file_sha256(path) != s["sha256"]:
            problems.append({"shard": rel, "problem": "checksum_mismatch", "detail": "the file changed after the build"})
            return None
        table = pq.read_table(path)
    except Exception as exc:  # a truncated or corrupt file: a finding, whatever the reader raises
        problems.append({"shard": rel, "problem": "unreadable", "detail": f"{type(exc).__name__}: {exc}"[:300]})
        return None
    if table.num_rows != s["rows"]:
        problems.append({"shard": rel, "problem": "rows_mismatch",
                         "detail": f"{table.num_rows} rows in the file, the manifest says {s['rows']}"})  # fmt: skip
    version = (table.schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"").decode()
    if version != manifest.get("schema_version"):
        problems.append({"shard": rel, "problem": "schema_version",
                         "detail": f"{version!r}, manifest says {manifest.get('schema_version')!r}"})  # fmt: skip
    if s["table"] not in TABLES:
        problems.append({"shard": rel, "problem": "unknown_table", "detail": str(s["table"])[:100]})
        return None
    try:
        check_conforms(table, s["table"])
    except SchemaMismatch as exc:
        problems.append({"shard": rel, "problem": "schema", "detail": str(exc)})
        return None
    return table, s


def _unlisted_files(out: Path, listed: set) -> list[dict]:
    """Every entry under a table folder that the manifest does not list: ``datasets.load_dataset(
    "parquet", data_dir=OUT/<table>)`` reads whatever lies there, so a stray copy of a shard doubles rows."""
    from pipeline.runstate import TABLE_DIRS

    found = []
    for name in TABLE_DIRS:
        folder = out / name
        if folder.is_symlink():
            found.append({"shard": name, "problem": "symlink", "detail": "a table folder that is a symlink"})
            continue
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            d = Path(dirpath)
            links = [n for n in dirnames if (d / n).is_symlink()]
            for n in sorted(filenames + links):
                rel = (d / n).relative_to(out).as_posix()
                if rel not in listed:
                    found.append({"shard": rel, "problem": "unlisted_file",
                                  "detail": f"in {name}/ but not in the manifest: datasets would read it as data"})  # fmt: skip
    return found


def _count_problems(manifest: dict, split_rows: Counter) -> list[dict]:
    """The manifest's counts per table and split against the rows recounted from the shards."""
    counts = manifest.get("counts")
    if not isinstance(counts, dict):
        return [{"problem": "counts_mismatch", "detail": "the manifest has no counts"}]
    claimed = Counter()
    for table, splits in counts.items():
        for split, n in (splits.items() if isinstance(splits, dict) else ()):
            claimed[(table, split)] = n
    found = []
    for key in sorted(set(claimed) | set(split_rows), key=str):
        if claimed[key] != split_rows[key]:
            found.append({"table": key[0], "split": key[1], "problem": "counts_mismatch",
                          "detail": f"{split_rows[key]} rows in the shards, the manifest says {claimed[key]}"})  # fmt: skip
    return found


def _reconciliation(out: Path, manifest: dict, rows: Counter, problems: list[dict]) -> dict:
    """The reconciliation recomputed from stage counters and the rows actually in the shards, compared
    with the manifest's. The counters come from the units' ``stats.json`` under ``OUT/.movid/units`` (what
    the commit summed) when the run state is there, and are checked against the manifest's ``stages``."""
    from pipeline.manifest import TABLE_ORDER, reconcile

    stages = manifest.get("stages")
    if not isinstance(stages, dict):
        problems.append({"problem": "reconciliation_mismatch", "detail": "the manifest has no stage counters"})
        stages = {}
    totals: dict[str, Counter] = {k: Counter(v) for k, v in stages.items() if isinstance(v, dict)}
    units = out / ".movid" / "units"
    stats_files = sorted(units.glob("[!.]*/stats.json")) if units.is_dir() and not units.is_symlink() else []
    if stats_files:
        from_units: dict[str, Counter] = {}
        try:
            for f in stats_files:
                for stage, c in json.loads(f.read_text())["stages"].items():
                    from_units.setdefault(stage, Counter()).update(c)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append({"problem": "stages_unreadable", "detail": f"{f.relative_to(out)}: {exc}"[:300]})
        else:
            a = {k: {n: v for n, v in c.items() if v} for k, c in from_units.items()}
            b = {k: {n: v for n, v in c.items() if v} for k, c in totals.items()}
            if a != b:
                bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                problems.append({"problem": "stages_mismatch",
                                 "detail": f"the manifest's stage counters differ from the units' for {', '.join(bad)}"})  # fmt: skip
            totals = from_units
    shard_rows = {t: rows[t] for t in TABLE_ORDER}
    try:
        recomputed = reconcile(totals, shard_rows)
    except Exception as exc:  # counters of the wrong type: the manifest was edited
        problems.append({"problem": "reconciliation_mismatch", "detail": f"cannot recompute: {exc}"[:300]})
        return {"ok": False}
    claimed = manifest.get("reconciliation")
    if recomputed != claimed:
        if isinstance(claimed, dict):
            bad = sorted(k for k in set(recomputed) | set(claimed) if recomputed.get(k) != claimed.get(k))
        else:
            bad = ["(the whole block)"]
        problems.append({"problem": "reconciliation_mismatch",
                         "detail": f"the manifest's reconciliation differs from the one recomputed from the shards "
                                   f"and stage counters in: {', '.join(bad)}"})  # fmt: skip
    if not recomputed["ok"]:
        bad = sorted(k for k, v in recomputed.items() if isinstance(v, dict) and not v.get("ok", True))
        problems.append({"problem": "reconciliation_failed", "detail": f"counts do not balance: {', '.join(bad)}"})
    return recomputed
