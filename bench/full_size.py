"""A build at HumanML3D's full size from generated sample data: wall time, peak memory and time per stage.

    .venv/bin/python bench/full_size.py [--clips 14616] [--executor local|ray] [--workdir bench_out]

HumanML3D has 14,616 clips; with their mirrors, 29,232 motions. The sample generator writes that many
synthetic clips (and mirrors) in HumanML3D's layout (~3.8 GB; generated once, kept in the workdir), then
``movid build`` runs on them in a child process, which prints its peak resident memory (VmHWM) at exit.
With ``--set local.workers=N`` the figure is the driver's; each forked worker has its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.sample_data import write_sample_humanml3d  # noqa: E402

# The build's own high-water mark, from the kernel's per-address-space counter (VmHWM), printed at exit: a
# child's getrusage(RUSAGE_CHILDREN) keeps the RSS it had before exec — the whole of this bench, after
# generating gigabytes of sample data — so it would report this process's size, not the build's.
_PEAK_WRAPPER = """
import re, sys
from movid.cli import main
try:
    rc = main(sys.argv[1:])
finally:
    hwm = re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)
    print("VmHWM_KB", hwm, file=sys.stderr)
sys.exit(rc)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=14_616, help="clips before mirroring (HumanML3D: 14,616)")
    ap.add_argument("--executor", default="local", choices=["local", "ray"])
    ap.add_argument("--workdir", default="bench_out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. local.workers=0")
    args = ap.parse_args()
    work = Path(args.workdir)
    root, out = work / f"humanml3d-full-{args.clips}", work / f"full-build-{args.executor}"
    if not (root / "all.txt").is_file():
        print(f"generating {args.clips} synthetic clips and their mirrors in {root} …", flush=True)
        t0 = time.perf_counter()
        write_sample_humanml3d(root, n_motions=args.clips, seed=0, show_progress=True)
        print(f"generated in {time.perf_counter() - t0:.0f} s")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-c", _PEAK_WRAPPER, "build", "--source", f"humanml3d={root}", "--out", str(out),
           "--executor", args.executor, "--quiet", *[a for kv in args.set for a in ("--set", kv)]]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
        return proc.returncode
    peak_mb = int(proc.stderr.rsplit("VmHWM_KB ", 1)[1].split()[0]) / 1024
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
    sets = "".join(f" --set {kv}" for kv in args.set)
    print(f"reproduce: .venv/bin/python bench/full_size.py --clips {args.clips} --executor {args.executor}{sets}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
