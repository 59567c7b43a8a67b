"""``movid score`` and ``movid evaluate``: the bench answered by a trained checkpoint (evaluate) and scored by a
judge beside the baselines (score). ``add_commands(sub)`` adds them to a parser's subparsers (``model.cli``)."""

from __future__ import annotations

import argparse
import os
import sys
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

__all__ = ["add_commands"]


def _cmd_evaluate(args) -> int:
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
    # here: answering imports torch, transformers and pandas (seconds); scoring alone never needs them
    from model.evaluate import predict_bench

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


def add_commands(sub) -> None:
    """``score`` and ``evaluate``, added to the subparsers ``sub``."""
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
