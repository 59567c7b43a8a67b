"""The sha256 of every shard of three reference builds, recorded once and compared after any change that
must not change the output (issue 18's redesign, refactors, speed work).

    .venv/bin/python tests/output_digests.py            # build, compare with tests/output_digests.json
    .venv/bin/python tests/output_digests.py --record   # build, write the file (an intended output change)

The builds (small, so that ``tests/pipeline/test_output_digests.py`` runs them in the default suite):

- ``broken``: sample HumanML3D with one record of every broken-input kind, videos, and AMASS / Motion-X
  SMPL sources with their synthetic body models; offline annotator; local executor;
- ``offline``: plain sample HumanML3D and videos, offline annotator, on Ray (two work units per split);
- ``llm``: sample HumanML3D through the loopback OpenAI-compatible server (``tests/llm_server.py``).

``--demo RUN BLIND`` compares (or with ``--record``, records) the files of a ``make demo`` run instead: its
``scores.json`` (less the folders it names) and both runs' ``predictions.jsonl`` (CPU training is deterministic, so a behaviour-preserving
change gives the same bytes; ``make demo DEMO_RUN=... DEMO_BLIND=...`` puts them where you like).

A digest covers each manifest-listed shard's bytes and the manifest's counts (tables, reconciliation,
quarantine reasons); timings and host names are not part of it. Record only after reading the diff this
script prints: a changed digest means a changed dataset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGESTS = Path(__file__).with_name("output_digests.json")
BUILDS = ("broken", "offline", "llm")


def _sources(kind: str, src: Path) -> tuple[list[str], list[str]]:
    """Write the sample sources of one build; return (--source values, --set values)."""
    from pipeline.sample_data import write_sample_humanml3d, write_sample_smpl, write_sample_videos

    h = src / "humanml3d"
    if kind == "broken":
        write_sample_humanml3d(h, n_motions=12, seed=3, broken=True)
        write_sample_videos(src / "videos", h, 3)
        write_sample_smpl(src, 2, seed=3)
        return ([f"humanml3d={h}", f"video={src / 'videos'}", f"amass={src / 'amass'}", f"motionx={src / 'motionx'}"],
                [f"smpl.model_dir={src / 'body_models'}", f"amass.texts={src / 'amass' / 'texts'}"])  # fmt: skip
    if kind == "offline":
        write_sample_humanml3d(h, n_motions=16, seed=5)
        write_sample_videos(src / "videos", h, 4)
        return [f"humanml3d={h}", f"video={src / 'videos'}"], ["plan.unit_size=8"]
    write_sample_humanml3d(h, n_motions=6, seed=7)
    return [f"humanml3d={h}"], []


def digest_build(out: Path) -> dict:
    """{shard path: sha256} for every shard the manifest lists, plus ``manifest`` (its counts)."""
    manifest = json.loads((out / "manifest.json").read_text())
    result = {s["path"]: hashlib.sha256((out / s["path"]).read_bytes()).hexdigest() for s in manifest["shards"]}
    counts = {k: manifest.get(k) for k in ("counts", "reconciliation", "quarantine_reasons", "schema_version")}
    result["manifest"] = hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()
    return result


def run_build(kind: str, work: Path) -> dict:
    """Build ``kind`` under ``work`` and return its digests."""
    from pipeline.build import build
    from pipeline.config import load_config

    src, out = work / f"src-{kind}", work / f"out-{kind}"
    sources, sets = _sources(kind, src)
    if kind == "llm":
        from tests.llm_server import FakeLLM

        os.environ.setdefault("MOVID_DIGEST_KEY", "sk-digest-test")
        with FakeLLM() as server:
            sets = sets + ["annotator.backend=openai", f"annotator.base_url={server.base_url}",
                           "annotator.api_key_env=MOVID_DIGEST_KEY", f"annotator.cache_dir={work / 'cache'}"]  # fmt: skip
            cfg = load_config(None, ["executor=local", *sets], sources)
            build(cfg, str(out), show_progress=False)
    else:
        executor = ["executor=ray", "ray.num_cpus=2"] if kind == "offline" else ["executor=local"]  # a local Ray
        cfg = load_config(None, [*executor, *sets], sources)
        build(cfg, str(out), show_progress=False)
    return digest_build(out)


def compare(recorded: dict, got: dict) -> list[str]:
    """Human lines for every difference; empty when identical."""
    lines = []
    for name in sorted(set(recorded) | set(got)):
        a, b = recorded.get(name), got.get(name)
        if a is None or b is None:
            lines.append(f"{name}: {'only recorded' if b is None else 'not recorded'}")
        elif a != b:
            lines.append(f"{name}: recorded {a[:12]}…, now {b[:12]}…")
    return lines


def _demo(run: Path, blind: Path, record: bool) -> int:
    files = {"scores.json": run / "scores.json", "predictions.jsonl": run / "predictions.jsonl",
             "blind/predictions.jsonl": blind / "predictions.jsonl"}  # fmt: skip
    got = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    # the scores without where their inputs were (baselines.*.source names the run and build folders)
    scores = json.loads(files["scores.json"].read_text())
    for baseline in scores.get("baselines", {}).values():
        baseline.pop("source", None)
    got["scores.json"] = hashlib.sha256(json.dumps(scores, sort_keys=True).encode()).hexdigest()
    recorded = json.loads(DIGESTS.read_text())
    if record:
        recorded["demo"] = got
        DIGESTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"recorded the demo's scores in {DIGESTS}")
        return 0
    diff = compare(recorded["demo"], got)
    print("demo: " + ("identical" if not diff else f"{len(diff)} differences\n  " + "\n  ".join(diff)))
    return 1 if diff else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--record", action="store_true", help="write tests/output_digests.json from these builds")
    ap.add_argument("--builds", default=",".join(BUILDS), help="comma-separated subset of " + ", ".join(BUILDS))
    ap.add_argument("--demo", nargs=2, metavar=("RUN", "BLIND"), help="check a make demo run's scores instead")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.demo:
        return _demo(Path(args.demo[0]), Path(args.demo[1]), args.record)
    kinds = [k for k in args.builds.split(",") if k]
    with tempfile.TemporaryDirectory(prefix="mvdig-") as tmp:
        got = {}
        for kind in kinds:
            got[kind] = run_build(kind, Path(tmp))
            print(f"{kind}: {len(got[kind]) - 1} shards")
    if args.record:
        recorded = json.loads(DIGESTS.read_text()) if DIGESTS.is_file() else {}
        recorded.update(got)
        DIGESTS.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        print(f"recorded {', '.join(kinds)} in {DIGESTS}")
        return 0
    recorded = json.loads(DIGESTS.read_text())
    bad = 0
    for kind in kinds:
        diff = compare(recorded[kind], got[kind])
        bad += bool(diff)
        print(f"{kind}: " + ("identical" if not diff else f"{len(diff)} differences\n  " + "\n  ".join(diff)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
