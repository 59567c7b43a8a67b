"""``movid inspect OUT``: what a build folder holds — counts per table and split, quarantine reasons,
and for an unfinished build how far it got."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.runstate import RunState, RunStateError, contained_path
from schemas.manifest import load as load_manifest

__all__ = ["inspect_build"]


def inspect_build(out: str | Path, examples: int = 3) -> str:
    state = RunState(out)
    if not state.run_file.is_file() and not state.manifest_file.is_file():
        what = "does not exist" if not state.out.exists() else "holds no movid build (no .movid/run.json)"
        raise RunStateError(f"{out} {what}")
    if not state.is_complete():
        done = sum(1 for p in state.units_dir.glob("*/stats.json")) if state.units_dir.is_dir() else 0
        return (f"{out}: build not finished — {done} work unit(s) done so far (the plan unit included).\n"
                "Rerun the same `movid build` command to resume.")  # fmt: skip
    m = load_manifest(state.out)
    lines = [f"{out}: movid build {m.code_version}, schema {m.schema_version}, config {m.config_hash}",
             "  sources: " + ", ".join(f"{s['kind']}={s['path']}" for s in m.sources),
             "", f"  {'table':<12} {'split':<8} {'rows':>8} {'shards':>7}"]  # fmt: skip
    shards = Counter((s["table"], s["split"]) for s in m.shards)
    for table, splits in m.counts.items():
        for split, n in splits.items():
            key_split = "_" if split == "all" else split
            lines.append(f"  {table:<12} {split:<8} {n:>8} {shards[(table, key_split)]:>7}")
    reasons = m.quarantine_reasons
    lines += ["", "  quarantine reasons:" if reasons else "  quarantine: empty"]
    lines += [f"    {r:<22} {n:>6}" for r, n in reasons.items()]
    qfiles = [contained_path(state.out, s.path) for s in m.shard_entries("quarantine")]
    if qfiles and examples:
        rows = pq.read_table(qfiles[0], columns=["record_id", "reason", "detail"]).slice(0, examples).to_pylist()
        lines += ["", "  e.g.:"] + [f"    {r['record_id']}: {r['reason']} — {r['detail']}" for r in rows]
    val = m.validation
    if val.get("table_level", {}).get("checks"):
        bad = [k for k, c in val["table_level"]["checks"].items() if not c["ok"]]
        flags = {k.removeprefix("flagged_"): n for k, n in val.get("record_level", {}).items() if k.startswith("flagged_")}
        lines += ["", "  validation: table-level " + (f"FAILED ({', '.join(bad)})" if bad else "ok")
                  + (f"; plausibility flags on kept clips: {', '.join(f'{k} {n}' for k, n in flags.items())}" if flags else "")
                  + f"; Data Docs {val.get('data_docs')}"]  # fmt: skip
    rec = m.reconciliation
    lines += ["", "  reconciliation: " + ("ok" if rec["ok"] else "FAILED") + "  (" + ", ".join(
        f"{k} {v['in']}={v['out']}+{v['quarantined']}" for k, v in rec.items() if isinstance(v, dict) and "in" in v
    ) + ")"]  # fmt: skip
    return "\n".join(lines)
