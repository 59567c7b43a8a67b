"""Validation of a whole build: table-level checks across every shard (at commit and in ``movid validate``)
and the full revalidation of a finished build (checksums, schema, record-level suites, table checks).

Table-level checks (great-expectations suites on id summaries; failures fail the build with a report):
duplicate ids across shards, split leakage — one source clip (with its mirror ``M`` twin and its sub-clips,
and the videos and conversations about it) in two splits — and references between tables (a video's or a
conversation's motion / video exists). Results go into the manifest and to Data Docs under
``OUT/validation/``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["DATA_DOCS", "revalidate", "table_checks"]

log = logging.getLogger(__name__)
DATA_DOCS = "validation/data_docs"
EXAMPLES = 10


def _read(out: Path, paths: list[str], columns: list[str]) -> pa.Table | None:
    """The ``columns`` of all ``paths`` (one dataset read: files are read on pyarrow's threads)."""
    if not paths:
        return None
    return pq.ParquetDataset([str(out / p) for p in paths]).read(columns=columns)


def _frames(out: Path, shards: list[dict]) -> dict[str, pa.Table | None]:
    """The id summaries of every table."""
    by_table: dict[str, list[str]] = {}
    for s in shards:
        by_table.setdefault(s["table"], []).append(s["path"])
    cols = {"motion": ["motion_id", "parent_id", "mirror_of", "split"], "video": ["video_id", "motion_id", "split"],
            "instruction": ["sample_id", "motion_id", "video_id", "split"]}  # fmt: skip
    frames = {}
    for table, columns in cols.items():
        frames[table] = _read(out, by_table.get(table, []), columns)
    return frames


def _suite_inputs(frames: dict[str, pa.Table | None]):
    """(name, DataFrame, expectations) for each table-level check."""
    import pandas as pd

    from stages.validate import gx_module

    gx = gx_module()
    E = gx.expectations
    motion, video, instr = (None if frames[t] is None else frames[t].to_pandas() for t in ("motion", "video", "instruction"))
    checks = []
    for table, df, id_col in (("motion", motion, "motion_id"), ("video", video, "video_id"),
                              ("instruction", instr, "sample_id")):  # fmt: skip
        if df is not None and len(df):
            checks.append((f"{table}_ids", df[[id_col]],
                           [E.ExpectColumnValuesToBeUnique(column=id_col, meta={"check": "duplicate_id"})]))  # fmt: skip

    # split leakage: every clip root (the un-mirrored full clip) in one split, whatever table mentions it
    roots = pd.Series(dtype=object)
    rows = []
    if motion is not None and len(motion):
        root = motion["mirror_of"].fillna(motion["parent_id"]).fillna(motion["motion_id"])
        # a mirrored sub-clip names its mirrored parent; its mirror_of is the un-mirrored full clip already
        roots = pd.Series(root.to_numpy(), index=motion["motion_id"].to_numpy())
        roots = roots[~roots.index.duplicated()]  # (duplicate ids are their own check)
        rows.append(pd.DataFrame({"root": root, "split": motion["split"], "via": "motion:" + motion["motion_id"]}))
    for table, df, id_col in (("video", video, "video_id"), ("instruction", instr, "sample_id")):
        if df is not None and len(df):
            linked = df[df["motion_id"].notna()]
            r = linked["motion_id"].map(roots).fillna(linked["motion_id"]) if len(roots) else linked["motion_id"]
            rows.append(pd.DataFrame({"root": r, "split": linked["split"], "via": f"{table}:" + linked[id_col]}))
    if instr is not None and video is not None and len(instr) and len(video):  # conversations about a video
        vsplit = dict(zip(video["video_id"], video["split"], strict=True))
        about = instr[instr["video_id"].notna()]
        rows.append(pd.DataFrame({"root": "video:" + about["video_id"], "split": about["split"],
                                  "via": "instruction:" + about["sample_id"]}))  # fmt: skip
        rows.append(pd.DataFrame({"root": ["video:" + v for v in vsplit], "split": list(vsplit.values()),
                                  "via": ["video:" + v for v in vsplit]}))  # fmt: skip
    if rows:
        leak = pd.concat(rows, ignore_index=True).drop_duplicates(["root", "split"]).reset_index(drop=True)
        checks.append(("split_leakage", leak,
                       [E.ExpectColumnValuesToBeUnique(column="root", meta={"check": "split_leakage"})]))  # fmt: skip

    # references: a left join of the referencing rows onto the referenced table's ids ("found" is null where
    # nothing matches), then great-expectations expects no nulls. (An in-set expectation with every id as its
    # value set did the same but serialised the ~10k ids into each of its metric configurations: 1 s a run.)
    # (the join in pyarrow: pandas' isin on 300k string ids and the copies to numpy took 0.45 s)
    def ids(table: str, col: str) -> pa.Array:
        t = frames[table]
        return pa.array([], pa.string()) if t is None else t[col].combine_chunks()

    existing = {"motion_id": ids("motion", "motion_id"), "video_id": ids("video", "video_id")}
    for table, id_col in (("video", "video_id"), ("instruction", "sample_id")):
        t = frames[table]
        if t is None or not t.num_rows:
            continue
        for col in ["motion_id"] + (["video_id"] if table == "instruction" else []):
            refs = t.select([id_col, col]).filter(pc.is_valid(t[col]))
            if not refs.num_rows:
                continue
            found = pc.if_else(pc.is_in(refs[col], value_set=existing[col]), refs[col], pa.scalar(None, pa.string()))
            frame = refs.append_column("found", found).to_pandas()
            check = "dangling_motion_reference" if col == "motion_id" else "dangling_video_reference"
            checks.append((f"{table}_{col.removesuffix('_id')}_references", frame,
                           [E.ExpectColumnValuesToNotBeNull(column="found", meta={"check": check})]))  # fmt: skip
    return checks


def table_checks(out: str | Path, shards: list[dict]) -> dict:
    """Run the table-level checks over ``shards`` (manifest entries: table, path) of the build in ``out``.
    Returns ``{"ok", "checks": {check: {"ok", "unexpected", "examples"}}}``; Data Docs go to
    ``out/validation/data_docs``."""
    out = Path(out)
    frames = _frames(out, shards)
    results: dict[str, dict] = {}
    inputs = _suite_inputs(frames)
    ctx = _docs_context(out)
    for name, df, expectations in inputs:
        for meta, count, values in _run(ctx, name, df, expectations):
            check = meta["check"]
            entry = results.setdefault(check, {"ok": True, "unexpected": 0, "examples": []})
            if count:
                entry["ok"] = False
                entry["unexpected"] += count
                entry["examples"] += values[: EXAMPLES - len(entry["examples"])]
    for check in ("duplicate_id", "split_leakage", "dangling_motion_reference", "dangling_video_reference"):
        results.setdefault(check, {"ok": True, "unexpected": 0, "examples": []})
    ctx.build_data_docs(site_names=["movid"])
    return {"ok": all(r["ok"] for r in results.values()), "checks": dict(sorted(results.items()))}


def _docs_context(out: Path):
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from stages.validate import gx_module

    gx = gx_module()
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    docs = (out / DATA_DOCS).resolve()  # the docs site wants an absolute folder
    shutil.rmtree(docs, ignore_errors=True)
    ctx.add_data_docs_site("movid", {"class_name": "SiteBuilder", "show_how_to_buttons": False,
                                     "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                                       "base_directory": str(docs)},
                                     "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})  # fmt: skip
    return ctx


def _run(ctx, name: str, df, expectations: list) -> list[tuple[dict, int, list]]:
    """Run one table-level suite; per expectation: its meta, how many rows fail and a few of them."""
    from stages.validate import gx_module

    gx = gx_module()
    ds = ctx.data_sources.add_pandas(f"movid_{name}")
    batch = ds.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
    suite = ctx.suites.add(gx.ExpectationSuite(name=name))
    for e in expectations:
        suite.add_expectation(e)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    cp = ctx.checkpoints.add(gx.Checkpoint(name=f"movid_{name}", validation_definitions=[vd],
                                           result_format={"result_format": "SUMMARY"}))  # fmt: skip
    # no UpdateDataDocsAction: it rebuilds the whole site after every checkpoint; table_checks builds it once
    result = cp.run(batch_parameters={"dataframe": df.reset_index(drop=True)})
    out = []
    for vr in result.run_results.values():
        for r in vr.results:
            if not r.success and r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(f"table check {name} raised {r.exception_info.get('exception_message')}")
            count = 0 if r.success else int(r.result.get("unexpected_count") or 0)
            examples = list(r.result.get("partial_unexpected_index_list") or []) if count else []
            out.append((r.expectation_config.meta or {}, count, _values(df, examples)))
    return out


def _values(df, rows: list[int]) -> list[dict]:
    return [{k: (None if v != v else v) for k, v in df.iloc[r].items()} for r in rows[:EXAMPLES]]


# --- movid validate OUT --------------------------------------------------------------------------------
def revalidate(out: str | Path, *, show_progress: bool = True) -> dict:
    """Revalidate a finished build: every shard's checksum, size and schema against the manifest, the
    record-level suites on every shard, the table-level checks and the row counts. Writes
    ``OUT/validation/report.json`` (and Data Docs) and returns the report; ``report["ok"]`` is the verdict."""
    from tqdm.auto import tqdm

    from pipeline.config import BuildConfig, _from_dict
    from pipeline.runstate import atomic_write_json
    from pipeline.shards import file_sha256
    from schemas import SCHEMA_VERSION_KEY, SchemaMismatch, check_conforms
    from stages.validate import validate_tables

    out = Path(out)
    manifest_file = out / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{out}: no manifest.json — not a finished movid build")
    manifest = json.loads(manifest_file.read_text())
    cfg = _from_dict(BuildConfig, manifest["config"])
    problems: list[dict] = []
    records: Counter = Counter()
    rows: Counter = Counter()
    for s in tqdm(manifest["shards"], desc="shards", unit="shard", disable=not show_progress):
        path = out / s["path"]
        if not path.is_file():
            problems.append({"shard": s["path"], "problem": "missing"})
            continue
        if path.stat().st_size != s["bytes"] or file_sha256(path) != s["sha256"]:
            problems.append({"shard": s["path"], "problem": "checksum mismatch (the file changed after the build)"})
            continue
        table = pq.read_table(path)
        version = (table.schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"").decode()
        if version != manifest["schema_version"]:
            problems.append({"shard": s["path"], "problem": f"schema version {version!r}, manifest says "
                                                              f"{manifest['schema_version']!r}"})  # fmt: skip
        try:
            check_conforms(table, s["table"])
        except SchemaMismatch as exc:
            problems.append({"shard": s["path"], "problem": str(exc)})
            continue
        rows[s["table"]] += table.num_rows
        if s["table"] in ("motion", "video", "instruction") and table.num_rows:
            checked = validate_tables({s["table"]: table}, cfg, source="revalidate")
            for r in checked.rejects:
                records[r.reason] += 1
                if len(problems) < 200:
                    problems.append({"shard": s["path"], "record": r.record_id, "problem": r.reason, "detail": r.detail})
    counts = {t: sum(v.values()) for t, v in manifest["counts"].items()}
    for table, n in counts.items():
        if rows[table] != n and not any(p.get("problem") == "missing" for p in problems):
            problems.append({"table": table, "problem": f"{rows[table]} rows in shards, manifest says {n}"})
    tables = table_checks(out, [s for s in manifest["shards"] if (out / s["path"]).is_file()])
    report = {"ok": not problems and tables["ok"] and manifest["reconciliation"]["ok"],
              "shards": len(manifest["shards"]), "rows": dict(rows), "record_failures": dict(records),
              "problems": problems, "table_level": tables, "data_docs": f"{DATA_DOCS}/index.html"}  # fmt: skip
    atomic_write_json(out / "validation" / "report.json", report)
    return report
