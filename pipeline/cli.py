"""The ``movid`` command line (the contract is in docs/architecture.md)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time

__all__ = ["main"]


def _cmd_sample_data(args) -> int:
    from pipeline.sample_data import write_sample_humanml3d

    target = f"{args.dir}/humanml3d"
    counts = write_sample_humanml3d(target, args.motions, args.seed, broken=args.broken, show_progress=True)
    print(f"wrote {counts['motions']} motions ({args.motions} clips and their mirrors)"
          + (f" and {counts['broken']} broken records" if args.broken else "") + f" to {target}")  # fmt: skip
    n_videos = min(args.motions, 10) if args.videos is None else args.videos
    if n_videos:
        from pipeline.sample_data import write_sample_videos

        c = write_sample_videos(f"{args.dir}/videos", target, n_videos)
        print(f"wrote {c['videos']} skeleton videos (H.264, 30 fps) of those motions to {args.dir}/videos")
    if args.smpl:
        from pipeline.sample_data import write_sample_smpl

        c = write_sample_smpl(args.dir, args.smpl, args.seed)
        print(f"wrote {c['amass']} AMASS-style clips to {args.dir}/amass, {c['motionx']} Motion-X clips to "
              f"{args.dir}/motionx and synthetic body models to {args.dir}/body_models; build them with\n"
              f"  movid build --source amass={args.dir}/amass --source motionx={args.dir}/motionx "
              f"--set smpl.model_dir={args.dir}/body_models --set amass.texts={args.dir}/amass/texts --out OUT")  # fmt: skip
    return 0


def _cmd_build(args) -> int:
    from pipeline.build import build, summarize
    from pipeline.config import load_config
    from pipeline.faults import FaultPlan

    overrides = list(args.set or [])
    if args.executor:
        overrides.append(f"executor={args.executor}")
    if args.address:
        overrides.append(f"ray.address={args.address}")
    cfg = load_config(args.config, overrides, args.source)
    if args.dry_run:
        from pipeline.dry_run import estimate_annotation

        e = estimate_annotation(cfg, args.out)
        print(f"dry run ({e['backend']} annotator, model {e['model']}): nothing was requested or written")
        print(f"  clips planned {e['clips_planned']} (sampled {e['clips_sampled']} to estimate)")
        print(f"  requests {e['requests']}: {e['cached']} from the cache, {e['requests_to_pay']} to pay for")
        for name, t in e["tasks"].items():
            print(f"    {name}: {t['requests']} requests for {t['records_planned']} planned records, "
                  f"{t['requests_to_pay']} to pay for, ~{t['prompt_tokens'] + t['completion_tokens']:,} tokens")
        print(f"  tokens ~{e['prompt_tokens']:,} prompt + ~{e['completion_tokens']:,} completion = ~${e['cost_usd']:.2f}"
              + (f" (budget ${e['budget_usd']:.2f})" if e["budget_usd"] is not None else ""))  # fmt: skip
        return 0
    t0 = time.perf_counter()
    faults = FaultPlan.from_env(os.environ)  # test-only MOVID_FAULT_* switches, read here and nowhere else
    manifest = build(cfg, args.out, overwrite=args.overwrite, show_progress=not args.quiet, wait=args.wait,
                     faults=faults)  # fmt: skip
    u = manifest["units"]
    print(f"built {args.out} in {time.perf_counter() - t0:.1f}s — {u['ran']} work unit(s) run, {u['skipped']} "
          f"already done ({cfg.executor} executor)")  # fmt: skip
    print(summarize(manifest))
    return 0


def _cmd_inspect(args) -> int:
    from pipeline.inspect_build import inspect_build

    print(inspect_build(args.out))
    return 0


def _cmd_validate(args) -> int:
    from pipeline.validation import revalidate

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
    from pipeline.build import summarize
    from pipeline.requeue import requeue

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


def _cmd_export(args) -> int:
    from model.export import export

    written = export(args.out, args.format, args.dest)
    for split, w in written.items():
        print(f"  {split:<6} {w['records']:>8} records  {w['path']}")
    return 0


def _cmd_report(args) -> int:
    from pipeline.report import write_report

    index = write_report(args.out, args.dest, args.samples, wait=args.wait)
    print(f"report: {index}")
    return 0


def _cmd_evaluate(args) -> int:
    from pathlib import Path

    from model.baselines import find_build
    from model.bench import read_bench
    from model.evaluate import predict_bench

    named = _named_predictions(args.baseline_predictions)
    if named is None:
        return 2
    if args.judge == "openai" and not os.environ.get(args.api_key_env):  # before answering, not after
        print(f"movid: error: --api-key-env: the environment variable {args.api_key_env} is not set", file=sys.stderr)
        return 2
    bench = read_bench(args.bench)
    bench_path = Path(args.bench)
    data = Path(args.data) if args.data else (find_build(bench_path) or (bench_path.parent if bench_path.name == "bench"
                                                                         else bench_path))  # fmt: skip
    dest = Path(args.predictions_out) if args.predictions_out else Path(args.checkpoint) / "predictions.jsonl"
    if args.limit:
        bench = bench[: args.limit]
    predict_bench(args.checkpoint, bench, data, dest, max_new_tokens=args.max_new_tokens, show_progress=not args.quiet)
    print(f"answers: {dest}")
    if args.blind:  # the blind twin answers the same questions (its checkpoint zeroes the motion itself)
        blind_dest = Path(args.blind) / "predictions.jsonl"
        predict_bench(args.blind, bench, data, blind_dest, max_new_tokens=args.max_new_tokens,
                      show_progress=not args.quiet)  # fmt: skip
        print(f"blind answers: {blind_dest}")
        args.baseline_predictions = [*(args.baseline_predictions or []), f"blind={blind_dest}"]
    args.predictions, args.data = str(dest), str(data)
    return _cmd_score(args, bench)


def _named_predictions(specs: list[str] | None) -> dict[str, str] | None:
    """{name: file} from ``--baseline-predictions NAME=FILE`` (None after printing the error)."""
    out = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip() or name.strip() in out or name.strip() == "majority":
            print(f"movid: error: --baseline-predictions {spec!r}: expected NAME=FILE with a new name other than "
                  "'majority' (e.g. blind=blind_run/predictions.jsonl)", file=sys.stderr)  # fmt: skip
            return None
        out[name.strip()] = path.strip()
    return out


def _cmd_score(args, bench: list | None = None) -> int:
    from pathlib import Path

    from model.baselines import find_build, majority_predictions, read_train_qa
    from model.bench import read_bench
    from model.score import (
        OfflineJudge,
        OpenAIJudge,
        format_markdown,
        format_table,
        read_predictions,
        score,
        write_json,
    )

    named = _named_predictions(args.baseline_predictions)
    if named is None:
        return 2
    if args.judge == "openai" and not os.environ.get(args.api_key_env):
        print(f"movid: error: --api-key-env: the environment variable {args.api_key_env} is not set", file=sys.stderr)
        return 2
    bench = bench if bench is not None else read_bench(args.bench)
    try:
        predictions = read_predictions(args.predictions)
        baselines = {name: read_predictions(path) for name, path in named.items()}
    except ValueError as exc:  # a record without question_id / prediction, or a line that is not JSON
        print(f"movid: error: {exc}", file=sys.stderr)
        return 2
    info = {name: {"predictions": path} for name, path in named.items()}
    build = Path(args.data) if args.data else find_build(args.bench)
    train = read_train_qa(build) if build is not None else []
    if train:  # the majority baseline needs the train split's QA (a bench file alone has none)
        baselines["majority"], info["majority"] = majority_predictions(train, bench)
        info["majority"]["build"] = str(build)
    if args.judge == "openai":
        judge = OpenAIJudge(model=args.model, base_url=args.base_url, api_key_env=args.api_key_env,
                            cache_dir=args.cache_dir, temperature=args.temperature,
                            requests_per_minute=args.requests_per_minute,
                            structured_output=args.structured_output)  # fmt: skip
    else:
        judge = OfflineJudge()
    result = score(bench, predictions, judge, repeats=args.repeats, seed=args.seed, calibration=args.calibration,
                   baselines=baselines, baseline_info=info)  # fmt: skip
    print(format_table(result))
    if args.markdown:
        Path(args.markdown).write_text(format_markdown(result))
    if args.out:
        write_json(result, args.out)
        print(f"scores: {args.out}")
    calib = result["calibration"]
    if calib is not None and not calib["ok"]:
        c, p = calib["contradictions"], calib["paraphrases"]
        print(f"movid: calibration FAILED: the {result['judge']['kind']} judge called {c['rate']:.1%} of minimally "
              f"contradicted references wrong (need {c['threshold']:.0%}) and {p['rate']:.1%} of paraphrases right "
              f"(need {p['threshold']:.0%}); its scores are not to be trusted (misjudged examples in --out)",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="movid", description="Build MoVid-style motion + video instruction data.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sample-data", help="write synthetic sources in the real formats")
    s.add_argument("dir", help="writes DIR/humanml3d/")
    s.add_argument("--motions", type=int, default=100, help="clips to generate (each also gets its M mirror)")
    s.add_argument("--seed", type=int, default=0)
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
    _wait_option(b)
    b.set_defaults(fn=_cmd_build)

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

    e = sub.add_parser("export", help="the instruction table as LLaVA- or Alpaca-style JSON for other trainers")
    e.add_argument("out")
    e.add_argument("--format", required=True, choices=["llava", "alpaca"])
    e.add_argument("--dest", help="folder for <format>/<split>.json (default: OUT/export)")
    e.set_defaults(fn=_cmd_export)

    rp = sub.add_parser("report", help="a static HTML report of a build (counts, histograms, samples) that opens offline")
    rp.add_argument("out")
    rp.add_argument("--dest", help="folder for index.html and assets/ (default: OUT/report)")
    rp.add_argument("--samples", type=int, default=12, help="clips in the sample browser")
    _wait_option(rp)
    rp.set_defaults(fn=_cmd_report)

    sc = sub.add_parser("score", help="score predictions on the bench (accuracy and 0-5 score per category, 95%% CIs)")
    sc.add_argument("--predictions", required=True, help="JSONL or Parquet with question_id, prediction")
    _score_options(sc)
    sc.set_defaults(fn=_cmd_score)

    ev = sub.add_parser("evaluate", help="answer the bench with a trained checkpoint, then score the answers")
    ev.add_argument("--checkpoint", required=True, help="a run folder of movid train (its latest checkpoint) or a checkpoint")
    ev.add_argument("--predictions-out", help="where the answers go (default: RUN/predictions.jsonl)")
    ev.add_argument("--limit", type=int, help="answer only the first N questions (a quick look)")
    ev.add_argument("--max-new-tokens", type=int, default=64)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.add_argument("--blind", metavar="RUN", help="the blind twin's run (movid train --set motion.blind=true): it "
                    "answers the bench too, into RUN/predictions.jsonl, and is shown beside the model")  # fmt: skip
    _score_options(ev)
    ev.set_defaults(fn=_cmd_evaluate)

    from model.cli import add_generate_parser, add_train_parser  # the trainer (docs/training.md)

    add_train_parser(sub)
    add_generate_parser(sub)
    return p


def _wait_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="if another movid run is writing OUT, wait for it to finish (default: stop at once)")  # fmt: skip


def _score_options(sc: argparse.ArgumentParser) -> None:
    sc.add_argument("--bench", required=True, help="OUT/bench (or OUT, or a bench Parquet file)")
    sc.add_argument("--judge", choices=["offline", "openai"], default="offline")
    sc.add_argument("--repeats", type=int, default=1, help="judge every question K times (distinct seeds)")
    sc.add_argument("--seed", type=int, default=0, help="judge seed of the first repeat; also the bootstrap's")
    sc.add_argument("--calibration", type=int, default=100, metavar="N",
                    help="references minimally contradicted (must be judged wrong) and paraphrased (must be judged "
                         "right) alongside; exit 1 below 95 %% / 90 %% (0: skip the check)")  # fmt: skip
    sc.add_argument("--data", metavar="OUT", help="the build whose train split gives the majority baseline (evaluate: "
                    "also the bench's motions and videos); default: the bench's build")  # fmt: skip
    sc.add_argument("--baseline-predictions", action="append", metavar="NAME=FILE",
                    help="another system's predictions scored beside the model's, e.g. "
                         "blind=blind_run/predictions.jsonl (repeatable)")  # fmt: skip
    sc.add_argument("--out", help="JSON results")
    sc.add_argument("--markdown", help="Markdown table")
    sc.add_argument("--model", default="gpt-4o-mini", help="judge model (openai)")
    sc.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    sc.add_argument("--api-key-env", default="OPENAI_API_KEY", help="the variable that holds the key")
    sc.add_argument("--cache-dir", default=".judge_cache", help="judge response cache (a rerun pays nothing)")
    sc.add_argument("--temperature", type=float, default=0.0)
    sc.add_argument("--requests-per-minute", type=float)
    sc.add_argument("--structured-output", default="json_schema", choices=["json_schema", "json_object", "none"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    from pipeline.config import ConfigError
    from pipeline.executors import ExecutorError
    from pipeline.manifest import BuildError
    from pipeline.runstate import RunStateError

    # A user error (a bad config, a path that does not exist or cannot be written, OUT in use) is one line and
    # exit 2; a build that cannot finish (a unit that failed, counts that do not balance, a full disk) exit 1;
    # anything else is a bug in movid: one line, exit 1, and the traceback in a file of the system's temp
    # folder (not in OUT: an exception's text may quote what must not reach the dataset).
    try:
        return args.fn(args)
    except (ConfigError, RunStateError, FileNotFoundError) as exc:
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
    import tempfile
    import traceback

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
