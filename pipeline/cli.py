"""The data side's commands of ``movid`` (sample-data, build, inspect, validate, requeue, report) and the
exit-code rules every ``movid`` command follows (:func:`run`). ``movid.cli`` adds the consumer side's
commands (``model.cli``); ``python -m pipeline.cli`` runs the data side's commands on their own."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from pipeline.build import build, summarize
from pipeline.build_warnings import build_warnings
from pipeline.config import ConfigError, load_config
from pipeline.dry_run import estimate_annotation
from pipeline.executors import ExecutorError
from pipeline.faults import FaultPlan
from pipeline.inspect_build import inspect_build
from pipeline.manifest import BuildError
from pipeline.requeue import requeue
from pipeline.runstate import RunStateError
from pipeline.sample_data import write_sample_humanml3d, write_sample_smpl, write_sample_videos
from pipeline.stage_graph import render_graph
from pipeline.validation import revalidate
from schemas.manifest import ManifestError

__all__ = ["ENVIRONMENT", "add_commands", "build_parser", "main", "run", "setup_process"]

# Process environment for the data side's libraries, set (where unset) by the entry points only: no usage
# statistics and no token auth for the Ray that a build starts; no analytics calls from great-expectations.
ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "GX_ANALYTICS_ENABLED": "false"}


SAMPLE_MARK = ".movid-sample-data"  # in a folder sample-data wrote: only such a folder may be overwritten
SAMPLE_PARTS = ("humanml3d", "videos", "amass", "motionx", "body_models", SAMPLE_MARK)


def _sample_folder(folder: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder (old files would mix with the new sample), unless ``overwrite`` and it is
    one that sample-data wrote: then what sample-data writes there is removed first, and nothing else."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"sample-data: {folder} is not a folder")
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    if not overwrite:
        raise ConfigError(f"sample-data: {folder} is not empty (old files would mix with the sample); choose an "
                          "empty folder, or add --overwrite to replace a sample written there before")  # fmt: skip
    if not (folder / SAMPLE_MARK).is_file():
        raise ConfigError(f"sample-data --overwrite: {folder} was not written by movid sample-data (no {SAMPLE_MARK}); "
                          "nothing was removed — choose an empty folder")  # fmt: skip
    for name in SAMPLE_PARTS:
        part = folder / name
        if part.is_symlink() or part.is_file():
            part.unlink()
        elif part.is_dir():
            shutil.rmtree(part)


def _cmd_sample_data(args) -> int:
    _sample_folder(Path(args.dir), args.overwrite)
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    (Path(args.dir) / SAMPLE_MARK).write_text("written by movid sample-data; --overwrite may replace this folder's sample\n")
    target = f"{args.dir}/humanml3d"
    counts = write_sample_humanml3d(target, args.motions, args.seed, broken=args.broken, show_progress=True)
    print(f"wrote {counts['motions']} motions ({args.motions} clips and their mirrors)"
          + (f" and {counts['broken']} broken records" if args.broken else "") + f" to {target}")  # fmt: skip
    n_videos = min(args.motions, 10) if args.videos is None else args.videos
    if n_videos:
        c = write_sample_videos(f"{args.dir}/videos", target, n_videos)
        print(f"wrote {c['videos']} skeleton videos (H.264, 30 fps) of those motions to {args.dir}/videos")
    if args.smpl:
        c = write_sample_smpl(args.dir, args.smpl, args.seed)
        print(f"wrote {c['amass']} AMASS-style clips to {args.dir}/amass, {c['motionx']} Motion-X clips to "
              f"{args.dir}/motionx and synthetic body models to {args.dir}/body_models; build them with\n"
              f"  movid build --source amass={args.dir}/amass --source motionx={args.dir}/motionx "
              f"--set smpl.model_dir={args.dir}/body_models --set amass.texts={args.dir}/amass/texts --out OUT")  # fmt: skip
    return 0


def _cmd_build(args) -> int:
    overrides = list(args.set or [])
    if args.executor:
        overrides.append(f"executor={args.executor}")
    if args.address:
        overrides.append(f"ray.address={args.address}")
    cfg = load_config(args.config, overrides, args.source)
    if args.dry_run:
        e = estimate_annotation(cfg, args.out)
        print(f"dry run ({e['backend']} annotator, model {e['model']}): nothing was requested or written")
        print(f"  clips planned {e['clips_planned']} (sampled {e['clips_sampled']} to estimate)")
        print(f"  requests {e['requests']}: {e['cached']} from the cache, {e['requests_to_pay']} to pay for")
        for name, t in e["tasks"].items():
            print(f"    {name}: {t['requests']} requests for {t['records_planned']} planned records, "
                  f"{t['requests_to_pay']} to pay for, ~{t['prompt_tokens'] + t['completion_tokens']:,} tokens")
        price = (f" at the batch price (synchronous ~${e['sync_cost_usd']:.2f})" if e["backend"] == "openai-batch"
                 else "")  # fmt: skip
        print(f"  tokens ~{e['prompt_tokens']:,} prompt + ~{e['completion_tokens']:,} completion = ~${e['cost_usd']:.2f}"
              + price + (f" (budget ${e['budget_usd']:.2f})" if e["budget_usd"] is not None else ""))  # fmt: skip
        return 0
    t0 = time.perf_counter()
    faults = FaultPlan.from_env(os.environ)  # test-only MOVID_FAULT_* switches, read here and nowhere else
    manifest = build(cfg, args.out, overwrite=args.overwrite, show_progress=not args.quiet, wait=args.wait,
                     faults=faults)  # fmt: skip
    u = manifest["units"]
    print(f"built {args.out} in {time.perf_counter() - t0:.1f}s — {u['ran']} work unit(s) run, {u['skipped']} "
          f"already done ({cfg.executor} executor)")  # fmt: skip
    print(summarize(manifest))
    warnings = build_warnings(args.out, manifest)
    for line in warnings:
        print(f"movid: warning: {line.strip()}" if not line.startswith("  ") else f"  {line.strip()}", file=sys.stderr)
    if warnings and args.strict:
        print("movid: error: --strict: the build has warnings (above)", file=sys.stderr)
        return 1
    return 0


def _cmd_stages(args) -> int:
    print(render_graph(), end="")
    return 0


def _cmd_inspect(args) -> int:
    print(inspect_build(args.out))
    return 0


def _cmd_validate(args) -> int:
    report = revalidate(args.out, show_progress=not args.quiet, wait=args.wait)
    print(f"{args.out}: {report['shards']} shards, rows " + ", ".join(f"{t} {n}" for t, n in report["rows"].items()))
    for p in report["problems"][:20]:
        print("  " + "; ".join(f"{k}: {v}" for k, v in p.items()))
    if len(report["problems"]) > 20:
        print(f"  … {len(report['problems']) - 20} more in {args.out}/validation/report.json")
    for name, c in report["table_level"]["checks"].items():
        print(f"  {name:<26} {'ok' if c['ok'] else 'FAILED: ' + str(c['unexpected']) + ' rows, e.g. ' + str(c['examples'][:2])}")
    print(f"{'valid' if report['ok'] else 'INVALID'} — report {args.out}/validation/report.json, "
          f"Data Docs {args.out}/{report['data_docs']}")  # fmt: skip
    return 0 if report["ok"] else 1


def _cmd_requeue(args) -> int:
    t0 = time.perf_counter()
    manifest = requeue(args.out, args.reason, executor=args.executor, address=args.address,
                       show_progress=not args.quiet, wait=args.wait)  # fmt: skip
    rq = manifest["requeue"]
    if not rq["units"]:
        print(f"nothing to requeue in {args.out}: {rq['records']} matching quarantined record(s), none in a work "
              "unit of the current plan")  # fmt: skip
        return 0
    print(f"requeued {rq['records']} quarantined record(s) in {len(rq['units'])} work unit(s) of {args.out} in "
          f"{time.perf_counter() - t0:.1f}s (round {rq['round']})")  # fmt: skip
    print(summarize(manifest))
    return 0


def _cmd_report(args) -> int:
    from pipeline.report import write_report  # here: it imports pyarrow.dataset and pandas (~0.7 s)

    index = write_report(args.out, args.dest, args.samples, wait=args.wait)
    print(f"report: {index}")
    return 0


def add_commands(sub) -> None:
    """The data side's commands, added to the subparsers ``sub`` of an ``argparse`` parser."""
    s = sub.add_parser("sample-data", help="write synthetic sources in the real formats")
    s.add_argument("dir", help="writes DIR/humanml3d/")
    s.add_argument("--motions", type=int, default=100, help="clips to generate (each also gets its M mirror)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--overwrite", action="store_true", help="replace a sample that sample-data wrote in DIR before")
    s.add_argument("--broken", action="store_true", help="add one record of each broken-input kind")
    s.add_argument("--videos", type=int, default=None, metavar="N",
                   help="render N of the motions as videos in DIR/videos (default: min(motions, 10))")  # fmt: skip
    s.add_argument("--smpl", type=int, default=0, metavar="N",
                   help="also write N AMASS-style and N Motion-X clips (and mirrors) with synthetic body models")  # fmt: skip
    s.set_defaults(fn=_cmd_sample_data)

    b = sub.add_parser("build", help="build the dataset into OUT")
    b.add_argument("--out", required=True)
    b.add_argument("--config", help="YAML config (see configs/)")
    b.add_argument("--source", action="append", metavar="KIND=PATH", help="humanml3d=PATH (repeatable)")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. shard.max_rows=500")
    b.add_argument("--executor", choices=["ray", "local"], help="default: ray")
    b.add_argument("--address", help="Ray cluster address (auto | ray://host:10001); default: start a local Ray")
    b.add_argument("--overwrite", action="store_true", help="replace a different build already in OUT")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--dry-run", action="store_true", help="estimate annotation requests, tokens and cost; write nothing")
    b.add_argument("--strict", action="store_true",
                   help="exit 1 when the build warns (no motion rows, or more than half its records quarantined)")  # fmt: skip
    _wait_option(b)
    b.set_defaults(fn=_cmd_build)

    sub.add_parser("stages", help="the declared stage graph: each source's stages and the tables they write"
                   ).set_defaults(fn=_cmd_stages)  # fmt: skip
    i = sub.add_parser("inspect", help="counts per table/split and quarantine reasons of a build")
    i.add_argument("out")
    i.set_defaults(fn=_cmd_inspect)

    v = sub.add_parser("validate", help="revalidate a finished build (checksums, schemas, suites); exit 1 if invalid")
    v.add_argument("out")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    _wait_option(v)
    v.set_defaults(fn=_cmd_validate)

    r = sub.add_parser("requeue", help="run quarantined records again after a fix, keeping what succeeded")
    r.add_argument("out")
    r.add_argument("--reason", action="append", metavar="REASON",
                   help="only records quarantined for REASON (repeatable; default: all)")  # fmt: skip
    r.add_argument("--executor", choices=["ray", "local"], help="default: the build's")
    r.add_argument("--address", help="Ray cluster address")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _wait_option(r)
    r.set_defaults(fn=_cmd_requeue)

    rp = sub.add_parser("report", help="a static HTML report of a build (counts, histograms, samples) that opens offline")
    rp.add_argument("out")
    rp.add_argument("--dest", help="folder for index.html and assets/ (default: OUT/report)")
    rp.add_argument("--samples", type=int, default=12, help="clips in the sample browser")
    _wait_option(rp)
    rp.set_defaults(fn=_cmd_report)


def _wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="if another movid run is writing OUT, wait for it to finish (default: stop at once)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The data side's commands alone (``movid.cli.build_parser`` has them all)."""
    p = argparse.ArgumentParser(prog="movid", description="Build MoVid-style motion + video instruction data.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


def setup_process(verbose: bool, environment: dict[str, str]) -> None:
    """What an entry point does before a command runs: logging, and the libraries' environment variables
    (``environment``; a value the user set is kept)."""
    for name, value in environment.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if not verbose:  # their INFO lines (a GX temp folder, every HTTP request) drown movid's own
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_libraries)


def _quiet_libraries(record: logging.LogRecord) -> bool:
    """A handler filter: a library's record passes at WARNING and above (on the handler, because a library
    may set its own loggers' levels when it is imported, after this)."""
    return record.levelno >= logging.WARNING or record.name.partition(".")[0] not in QUIET_LIBRARIES


# Third-party loggers kept at WARNING unless --verbose: great-expectations logs a "temporary directory" line per
# context and ~200 lines per validate; httpx/openai one line per request.
QUIET_LIBRARIES = ("great_expectations", "httpx", "httpx2", "httpcore", "openai", "urllib3", "aiohttp", "filelock", "fsspec",
                   "datasets", "transformers", "sentence_transformers", "asyncio")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_process(args.verbose, ENVIRONMENT)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Runs the command ``args.fn`` and turns what it raises into an exit code and one line on stderr.

    A user error (a bad config, a path that does not exist or cannot be written, OUT in use) is one line and
    exit 2; a build that cannot finish (a unit that failed, counts that do not balance, a full disk) exit 1;
    anything else is a bug in movid: one line, exit 1, and the traceback in a file of the system's temp
    folder (not in OUT: an exception's text may quote what must not reach the dataset)."""
    try:
        return args.fn(args)
    except (ConfigError, RunStateError, ManifestError, FileNotFoundError) as exc:
        print(f"movid: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except (ExecutorError, BuildError) as exc:
        print(f"movid: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the driver's own writes: plan unit, link pass, commit, manifest
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" (writing {exc.filename})" if exc.filename else ""
            print(f"movid: error: no space left on device{where}; free space and rerun the same command "
                  "(finished units are kept)", file=sys.stderr)  # fmt: skip
            return 1
        if exc.errno in _USER_ERRNOS:
            print(f"movid: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        return _internal_error(exc)
    except KeyboardInterrupt:
        print("movid: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        return _internal_error(exc)


# a path that does not exist, cannot be read or written, or is of the wrong kind: the user's to fix
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                errno.ELOOP, errno.ENAMETOOLONG}  # fmt: skip


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"  # ("[Errno 13] Permission denied: '...'" says it less plainly)
    return " ".join(str(exc).split()) or type(exc).__name__


def _internal_error(exc: BaseException) -> int:
    text = "".join(traceback.format_exception(exc))
    try:
        fd, path = tempfile.mkstemp(prefix="movid-traceback-", suffix=".txt")  # mode 0600
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        where = f"the full traceback is in {path}"
    except OSError:
        where = "the traceback could not be written to the temp folder"
    print(f"movid: internal error (a bug in movid): {type(exc).__name__}: {_one_line(exc)[:300]} — {where}",
          file=sys.stderr)  # fmt: skip
    return 1


if __name__ == "__main__":
    sys.exit(main())
