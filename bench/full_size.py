"""A build at HumanML3D's full size from generated sample data: wall time, peak memory and time per stage.

    .venv/bin/python bench/full_size.py [--clips 14616] [--executor local|ray] [--workdir bench_out]

HumanML3D has 14,616 clips; with their mirrors, 29,232 motions. The sample generator writes that many
synthetic clips (and mirrors) in HumanML3D's layout (~3.8 GB; generated once, kept in the workdir), then
``movid build`` runs on them in a child process, whose peak resident memory is read from the kernel's
accounting of that child (``getrusage(RUSAGE_CHILDREN)``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.sample_data import write_sample_humanml3d  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=14_616, help="clips before mirroring (HumanML3D: 14,616)")
    ap.add_argument("--executor", default="local", choices=["local", "ray"])
    ap.add_argument("--workdir", default="bench_out")
    args = ap.parse_args()
    work = Path(args.workdir)
    root, out = work / f"humanml3d-full-{args.clips}", work / f"full-build-{args.executor}"
    if not (root / "all.txt").is_file():
        print(f"generating {args.clips} synthetic clips and their mirrors in {root} …", flush=True)
        t0 = time.perf_counter()
        write_sample_humanml3d(root, n_motions=args.clips, seed=0, show_progress=True)
        print(f"generated in {time.perf_counter() - t0:.0f} s")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "movid", "build", "--source", f"humanml3d={root}", "--out", str(out),
           "--executor", args.executor, "--quiet"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
        return proc.returncode
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # (kB on Linux)
    m = json.loads((out / "manifest.json").read_text())
    s = m["seconds"]
    n = len((root / "all.txt").read_text().split())
    print(f"{n} motions ({args.clips} clips + mirrors), executor {args.executor}, {os.cpu_count()} cores, "
          f"load average before/after: see uptime")  # fmt: skip
    print(f"wall time {wall:.1f} s ({n / wall:.0f} motions/s); peak RSS of the build process {peak_mb:,.0f} MB")
    print(f"rows: {', '.join(f'{t} {sum(v.values())}' for t, v in m['counts'].items())}; "
          f"reconciliation {'ok' if m['reconciliation']['ok'] else 'FAILED'}")  # fmt: skip
    print("time per stage (unit stages summed over units):")
    for k, v in sorted(s["unit_stages"].items()):
        print(f"  unit stage {k:<24}{v:9.2f} s")
    for k in ("plan", "units", "ray_start", "ray_stop", "table_checks"):
        if k in s:
            print(f"  {k:<35}{s[k]:9.2f} s")
    print(f"reproduce: .venv/bin/python bench/full_size.py --clips {args.clips} --executor {args.executor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
