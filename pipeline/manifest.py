"""Commit of a finished build: staged unit shards renamed into ``OUT/<table>/<split>/part-NNNNN.parquet``
in plan order, the manifest (counts, shards with sha256, stage counters, reconciliation) and the
dataset card. Renames are recorded first in ``commit.json`` so a commit killed halfway completes on rerun.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

from pipeline.annotation import cost_usd
from pipeline.bench import commit_bench
from pipeline.config import BuildConfig, config_to_dict
from pipeline.runstate import RunState, atomic_write_bytes, atomic_write_json
from pipeline.stage_graph import STAGES, all_stages
from pipeline.units import NO_SPLIT
from schemas import SCHEMA_VERSION, TABLES
from stages.annotate import TASKS

__all__ = ["BuildError", "commit_build", "reconcile", "code_version"]

TABLE_ORDER = ("motion", "video", "instruction", "clip_stats", "quarantine")


class BuildError(RuntimeError):
    pass


def code_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("movid")
    except PackageNotFoundError:
        v = "unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
            timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        return f"{v}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return v


def final_path(table: str, split: str, n: int) -> str:
    return f"{table}/part-{n:05d}.parquet" if split == NO_SPLIT else f"{table}/{split}/part-{n:05d}.parquet"


def _commit_plan(unit_stats: list[dict]) -> list[dict]:
    """Staged → final renames. Part numbers run per table/split in plan order, so they do not depend on
    which unit finished first."""
    counters: Counter = Counter()
    moves = []
    for stats in unit_stats:
        for f in sorted(stats["files"], key=lambda f: (TABLE_ORDER.index(f["table"]), f["split"], f["file"])):
            key = (f["table"], f["split"])
            dst = final_path(f["table"], f["split"], counters[key])
            counters[key] += 1
            src = f".movid/units/{stats['unit_id']}/{f['table']}/{f['split']}/{f['file']}"
            moves.append({"src": src, "dst": dst, **{k: f[k] for k in ("table", "split", "rows", "bytes", "sha256")}})
    return moves


def _apply_moves(out: Path, moves: list[dict]) -> None:
    for m in moves:
        src, dst = out / m["src"], out / m["dst"]
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        elif not dst.exists():
            raise BuildError(f"shard {m['dst']} is missing and its staged file {m['src']} is gone")


def _balances(stage_totals: dict[str, Counter]) -> dict:
    """The ``in = out + quarantined`` entries, each summed over the stages that declare it
    (``pipeline.stage_graph``): every source's ingest stage counts clips, sub-clips and captions alike."""
    checks: dict[str, dict] = {}
    for stage in all_stages():
        c = stage_totals.get(stage.name, Counter())
        for b in stage.balances:
            if b.only_if_any and not c[b.inp]:
                continue
            entry = checks.setdefault(b.check, {"in": 0, "out": 0, "quarantined": 0})
            entry["in"] += c[b.inp]
            entry["out"] += c[b.out]
            entry["quarantined"] += c[b.quarantined]
    for c in checks.values():
        c["ok"] = c["in"] == c["out"] + c["quarantined"]
    return checks


def _produced(stage_totals: dict[str, Counter], table: str) -> int:
    """Rows the unit stages added to ``table``, by their declared ``rows_out`` counters."""
    return sum(stage_totals.get(s.name, Counter())[s.rows_out[table]] for s in STAGES.values() if table in s.rows_out)


# The cross-stage links whose names the manifest has always used for these tables' row counts.
_ROWS_LINK = {"motion": "motion_rows_equal_shard_rows", "video": "video_rows_equal_shard_rows",
              "instruction": "instruction_rows_equal_produced"}  # fmt: skip


def reconcile(stage_totals: dict[str, Counter], shard_rows: dict[str, int]) -> dict:
    """Every count that must balance, each with ``ok``. Input records = output records + quarantined: the
    declared balances of every stage, then the links between stages and the committed shards."""
    checks = _balances(stage_totals)
    plan, video = stage_totals.get("plan", Counter()), stage_totals.get("ingest_video", Counter())
    clips_in = sum(stage_totals.get(s.name, Counter())["clips_in"] for s in STAGES.values() if s.name.startswith("ingest_"))
    # rows that validation, and the link pass after it, sent to quarantine, per table
    validated = stage_totals.get("validate", Counter()) + stage_totals.get("link", Counter())
    dropped = sum(v for counts in stage_totals.values() for k, v in counts.items() if k.startswith("dropped_"))
    links = {
        "planned_equals_ingested": plan["planned"] == clips_in - video["clips_in"],  # (video SMPL motions: not planned)
        "planned_videos_equal_ingested": plan["videos_planned"] == video["videos_in"],
        "quarantine_rows_equal_drops": dropped == shard_rows.get("quarantine", 0),
    }
    for table in sorted({t for s in STAGES.values() for t in s.rows_out}):
        name = _ROWS_LINK.get(table, f"{table}_rows_equal_shard_rows")
        links[name] = _produced(stage_totals, table) - validated[f"{table}_quarantined"] == shard_rows.get(table, 0)
    instr = stage_totals.get("caption_instructions", Counter())
    if instr:
        ingested = sum(stage_totals.get(s.name, Counter())["captions_out"] for s in STAGES.values()
                       if s.name.startswith("ingest_"))  # fmt: skip
        links["every_caption_becomes_a_conversation"] = instr["captions_in"] == ingested
    links["ok"] = all(links.values())
    checks["links"] = links
    checks["ok"] = all(c["ok"] for c in checks.values() if isinstance(c, dict))
    return checks


def _annotator_usage(c: Counter, cfg: BuildConfig) -> dict:
    a = cfg.annotator
    cost = cost_usd(c, a)
    return {"backend": a.backend, "model": a.model if a.backend.startswith("openai") else None, "requests": c["requests"],
            "batch_requests": c["batch_requests"],
            "retries": c["retries"], "reasks": c["reasks"], "cache_hits": c["cache_hits"],
            "prompt_tokens": c["prompt_tokens"], "completion_tokens": c["completion_tokens"],
            "cost_usd": round(cost, 6), "clips_annotated": c["clips_annotated"], "clips_captioned": c["clips_captioned"],
            "videos_annotated": c["videos_annotated"], "videos_qa_annotated": c["videos_qa_annotated"],
            "qa_pairs": c["qa_out"],
            "qa_contradicting_kinematics": c["qa_quarantined"]}  # fmt: skip


def _validation(state: RunState, moves: list[dict], validated: Counter, cfg: BuildConfig) -> dict:
    """Record-level results (from the units) and the table-level checks over the committed shards."""
    from pipeline.table_checks import DATA_DOCS, table_checks

    if not cfg.validation.enabled:  # no suites at all (and no great-expectations import)
        return {"enabled": False, "table_level": {"ok": True, "checks": {}}}
    shards = [{"table": m["table"], "path": m["dst"]} for m in moves]
    return {
        "record_level": {k: v for k, v in sorted(validated.items()) if k.startswith(("dropped_", "flagged_"))}
        | {t: {"in": validated[f"{t}_in"], "quarantined": validated[f"{t}_quarantined"]}
           for t in ("motion", "video", "instruction")},
        "plausibility_action": cfg.validation.plausibility.action,
        "table_level": table_checks(state.out, shards),
        "data_docs": f"{DATA_DOCS}/index.html",
    }  # fmt: skip


def _dataset_card(manifest: dict) -> str:
    lines = ["---", "configs:"]
    for table, splits in manifest["counts"].items():
        if not splits:
            continue
        lines.append(f"- config_name: {table}")
        lines.append("  data_files:")
        for split in splits:
            pattern = f"{table}/*.parquet" if split == "all" else f"{table}/{split}/*.parquet"
            # one-folder tables need a split name for `datasets`: the bench is held-out test data
            name = split if split != "all" else ("test" if table == "bench" else "train")
            lines.append(f"  - split: {name}\n    path: {pattern}")
    lines += ["---", "", "# MoVid build (movid)", "",
              f"Built by movid {manifest['code_version']} (schema {manifest['schema_version']}, config "
              f"`{manifest['config_hash']}`) from: " + ", ".join(f"{s['kind']}" for s in manifest["sources"]) + ".",
              "", "Load a table offline with `datasets.load_dataset(\"parquet\", data_dir=\"<this folder>/motion\")`.",
              "", "## Counts", "", "| table | split | rows |", "| --- | --- | --- |"]  # fmt: skip
    for table, splits in manifest["counts"].items():
        for split, n in splits.items():
            lines.append(f"| {table} | {split} | {n} |")
    lines += ["", "## Quarantine reasons", "", "| reason | records |", "| --- | --- |"]
    lines += [f"| {r} | {n} |" for r, n in manifest["quarantine_reasons"].items()] or ["| (none) | 0 |"]
    lines += ["", "## Schemas", ""]
    for table, schema in TABLES.items():
        lines.append(f"### {table}\n\n```\n{schema.to_string(show_schema_metadata=False)}\n```\n")
    return "\n".join(lines) + "\n"


def _refuse_failed(state: RunState, checks: dict, table_level: dict, cfg: BuildConfig) -> None:
    """Stop the commit (BuildError, details under ``.movid/``) when the counts do not reconcile, or the
    table-level checks failed and ``validation.fail_on_table_errors`` is set."""
    if not checks["ok"]:
        atomic_write_json(state.dir / "failed-reconciliation.json", checks)
        raise BuildError(f"counts do not reconcile (a bug in movid; details in {state.dir}/failed-reconciliation.json)")
    if not table_level["ok"] and cfg.validation.fail_on_table_errors:
        atomic_write_json(state.dir / "failed-validation.json", table_level)
        bad = {k: v for k, v in table_level["checks"].items() if not v["ok"]}
        lines = [f"  {k}: {v['unexpected']} rows, e.g. {v['examples'][:3]}" for k, v in bad.items()]
        raise BuildError("table-level validation failed (details in "
                         f"{state.dir}/failed-validation.json and {state.out}/validation/data_docs/index.html):\n"
                         + "\n".join(lines))  # fmt: skip


def _threads_seen(unit_stats: list[dict]) -> dict[str, list]:
    """The intra-op thread settings the units ran with (``stages.threads``), each as its distinct values: a
    Ray build's units show ``allotted: [1]``; a unit finished by an older movid shows nothing."""
    seen: dict[str, set] = {}
    for stats in unit_stats:
        for k, v in (stats.get("threads") or {}).items():
            seen.setdefault(k, set()).add(v)
    return {k: sorted(v, key=lambda x: (x is None, x or 0)) for k, v in sorted(seen.items())}


def commit_build(state: RunState, unit_stats: list[dict], cfg: BuildConfig, identity: dict, extra: dict) -> dict:
    commit_file = state.dir / "commit.json"
    if commit_file.is_file():
        moves = json.loads(commit_file.read_text())
    else:
        moves = _commit_plan(unit_stats)
        atomic_write_json(commit_file, moves)
    _apply_moves(state.out, moves)

    counts: dict[str, dict[str, int]] = {t: {} for t in TABLE_ORDER}
    shard_rows: Counter = Counter()
    for m in moves:
        split = "all" if m["split"] == NO_SPLIT else m["split"]
        counts[m["table"]][split] = counts[m["table"]].get(split, 0) + m["rows"]
        shard_rows[m["table"]] += m["rows"]
    stage_totals: dict[str, Counter] = defaultdict(Counter)
    for stats in unit_stats:
        for stage, c in stats["stages"].items():
            stage_totals[stage].update(c)
    reasons: Counter = Counter()
    for c in stage_totals.values():
        reasons.update({k.removeprefix("dropped_"): v for k, v in c.items() if k.startswith("dropped_")})
    checks = reconcile(stage_totals, shard_rows)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "code_version": code_version(),
        **identity,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": config_to_dict(cfg),
        "sources": [{"kind": s.kind, "path": s.path} for s in cfg.sources],
        "counts": counts,
        "shards": [{k: m[k] for k in ("table", "split", "rows", "bytes", "sha256")} | {"path": m["dst"]} for m in moves],
        "stages": {k: dict(sorted(v.items())) for k, v in sorted(stage_totals.items())},
        "quarantine_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "reconciliation": checks,
        "annotator": _annotator_usage(sum((stage_totals.get(t.stage, Counter()) for t in TASKS.values()), Counter()), cfg),
        **extra,
    }
    t0 = time.perf_counter()
    manifest["validation"] = _validation(state, moves, stage_totals.get("validate", Counter()), cfg)
    stage_seconds: Counter = Counter()
    for stats in unit_stats:
        stage_seconds.update(stats.get("seconds", {}))
    manifest["threads"] = _threads_seen(unit_stats)
    manifest["seconds"] = manifest.get("seconds", {}) | {
        "unit_stages": {k: round(v, 3) for k, v in sorted(stage_seconds.items())},  # summed over units (CPU-ish)
        "table_checks": round(time.perf_counter() - t0, 3)}  # fmt: skip
    _refuse_failed(state, checks, manifest["validation"]["table_level"], cfg)
    # the QA bench from the committed test split (bench.enabled)
    if (bench := commit_bench(state.out, manifest["shards"], cfg)) is not None:
        manifest["shards"] += bench["shards"]
        manifest["counts"]["bench"] = {"all": bench["rows"]}
        manifest["bench"] = bench | {"shards": [s["path"] for s in bench["shards"]]}
    atomic_write_bytes(state.out / "README.md", _dataset_card(manifest).encode())
    atomic_write_json(state.manifest_file, manifest)  # last: its presence marks the build complete
    return manifest
