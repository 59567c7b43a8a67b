"""Validation throughput and its share of build time.

    .venv/bin/python bench/validate.py [--motions 14616] [--executor local|ray] [--workdir bench_out/validate]

Builds sample data (``--motions`` clips and their mirrors, with sub-clips; by default as many as HumanML3D
has) once with validation and once without, and reads where the time went from the manifest: the
record-level suites inside the units (great-expectations on the unit's motion, video and instruction
tables), each worker process's one-off great-expectations import, and the table-level checks at commit
(ids, split leakage, references, Data Docs). Then ``movid validate`` revalidates the finished build
(checksums, schemas, every record, table checks). Goal: validation < 10 % of build time.

The import (~2.3 s a process) does not shrink with the build: on a build of 2,000 clips (~20 s) it is
~11 % by itself, hence the default of HumanML3D's size and the share printed with and without it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.build import build  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.sample_data import write_sample_humanml3d  # noqa: E402


def _build(src: Path, out: Path, executor: str, validate: bool) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(None, [f"executor={executor}", f"validation.enabled={str(validate).lower()}"],
                      [f"humanml3d={src}"])  # fmt: skip
    t0 = time.perf_counter()
    manifest = build(cfg, str(out), show_progress=False)
    return time.perf_counter() - t0, manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motions", type=int, default=14616)  # HumanML3D's clips
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--workdir", default=str(ROOT / "bench_out" / "validate"))
    args = ap.parse_args()
    work = Path(args.workdir)
    src = work / f"humanml3d-{args.motions}"
    if not (src / "all.txt").is_file():
        shutil.rmtree(src, ignore_errors=True)
        write_sample_humanml3d(src, args.motions, seed=0)
    import_s = float(subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                                     "import great_expectations; print(time.perf_counter() - t)"],
                                    capture_output=True, text=True, check=True).stdout.split()[-1])  # fmt: skip

    plain_s, _ = _build(src, work / "out-plain", args.executor, False)
    build_s, m = _build(src, work / "out", args.executor, True)
    stages = m["seconds"]["unit_stages"]
    v = m["stages"]["validate"]
    rows = v["motion_in"] + v.get("video_in", 0) + v["instruction_in"]
    record_s, table_s = stages["validate"], m["seconds"]["table_checks"]
    # each worker process's one-off import (its CPU time, in a background thread that slows the stages it
    # overlaps rather than the validate stage's timer)
    setup_s = stages.get("validate_setup", 0.0)
    units_s = sum(t for k, t in stages.items() if k != "validate_setup")  # (the import slowed one of these)
    print(f"build of {args.motions} clips + mirrors ({args.executor} executor): {rows:,} rows validated "
          f"({v['motion_in']:,} motions, {v['instruction_in']:,} conversations in {m['units']['total']} units)")  # fmt: skip
    print(f"  build with validation {build_s:.1f} s, without {plain_s:.1f} s (difference {build_s - plain_s:+.1f} s; "
          "builds vary by a few seconds, so the stage timers below are the figures)")  # fmt: skip
    print(f"  record-level suites in the units: {record_s:.2f} s = {rows / record_s:,.0f} rows/s, "
          f"{1000 * record_s / m['units']['total']:.0f} ms a unit ({100 * record_s / units_s:.1f} % of the units' stage time)")  # fmt: skip
    print(f"  great-expectations import + context, once per worker process: {setup_s:.2f} s CPU "
          f"({import_s:.1f} s standalone)")  # fmt: skip
    driver = "" if args.executor == "local" else " (in the driver, its own great-expectations import included)"
    print(f"  table-level checks + Data Docs at commit: {table_s:.2f} s{driver}")
    if args.executor == "local":  # one process: stage seconds and build time are on the same clock
        base, of = build_s, "build time"
    else:  # stage seconds are summed over the workers, which run side by side: compare with the work they did
        base, of = units_s + table_s, "the build's work (stage seconds summed over workers, writes not included)"
    share = (record_s + setup_s + table_s) / base
    variable = (record_s + table_s) / base
    print(f"  validation share of {of}: {100 * share:.1f} % (goal < 10 %); "
          f"without the one-off import: {100 * variable:.1f} %")  # fmt: skip
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "movid", "validate", str(work / "out"), "--quiet"],
                       capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    revalidate_s = time.perf_counter() - t0
    report = json.loads((work / "out" / "validation" / "report.json").read_text())
    total = sum(report["rows"].values())
    print(f"movid validate: {'valid' if r.returncode == 0 else 'INVALID'}, {total:,} rows of {report['shards']} shards "
          f"in {revalidate_s:.1f} s = {total / revalidate_s:,.0f} rows/s (checksums, schemas, suites, table checks)")
    print(f"reproduce: .venv/bin/python bench/validate.py --motions {args.motions} --executor {args.executor}")


if __name__ == "__main__":
    main()
