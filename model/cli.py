"""The consumer side's commands of ``movid``: ``train``, ``generate``, ``export``, and ``score`` / ``evaluate``
(``model.score_cli``). ``add_commands(sub)`` adds them to a parser's subparsers (``movid.cli`` does);
``python -m model.cli …`` runs them on their own."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from model import score_cli
from model.config import ConfigError, load_train_config
from model.export import export

__all__ = ["ENVIRONMENT", "add_commands", "add_generate_parser", "add_train_parser", "main"]

# Process environment for the consumer side's libraries, set (where unset) by the entry points only: models
# and tokenizers come from local folders (never the hub); no tokenizer thread pool forked into DataLoader
# workers; no usage statistics and no token auth for the Ray that training starts.
ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}  # fmt: skip


def _cmd_train(args) -> int:
    from model.train import train  # here: torch, transformers and Ray Train take seconds to import

    cfg = load_train_config(args.config, args.set)
    last = train(cfg, args.data, args.out, executor=args.executor, workers=args.workers, resume=args.resume,
                 show_progress=not args.quiet)  # fmt: skip
    if last:
        print(f"trained {args.out}: step {last['step']}, loss {last['loss']:.4f} "
              f"({last['samples_per_s']:.1f} samples/s, {last['tokens_per_s']:.0f} tokens/s at the last log)")  # fmt: skip
    print(f"  metrics {args.out}/metrics.jsonl, checkpoints {args.out}/checkpoints/, TensorBoard {args.out}/tensorboard/")
    return 0


def _cmd_generate(args) -> int:
    from model.generate import Answerer, fetch_motion, fetch_video  # here: torch and transformers (seconds)

    if not (args.motion_id or args.video_id):
        print("movid: error: give --motion-id and/or --video-id", file=sys.stderr)
        return 2
    # the ids first: an unknown one is said before seconds of model loading
    motion = fetch_motion(args.data, args.motion_id) if args.motion_id else None
    video = fetch_video(args.data, args.video_id) if args.video_id else None
    answerer = Answerer(args.checkpoint, args.set)
    print(answerer.answer(args.question, motion, video, max_new_tokens=args.max_new_tokens))
    return 0


def _cmd_export(args) -> int:
    written = export(args.out, args.format, args.dest)
    for split, w in written.items():
        print(f"  {split:<6} {w['records']:>8} records  {w['path']}")
    return 0


def add_commands(sub) -> None:
    """The consumer side's commands, added to the subparsers ``sub`` of an ``argparse`` parser."""
    e = sub.add_parser("export", help="the instruction table as LLaVA- or Alpaca-style JSON for other trainers")
    e.add_argument("out")
    e.add_argument("--format", required=True, choices=["llava", "alpaca"])
    e.add_argument("--dest", help="folder for <format>/<split>.json (default: OUT/export)")
    e.set_defaults(fn=_cmd_export)
    score_cli.add_commands(sub)
    add_train_parser(sub)
    add_generate_parser(sub)


def add_train_parser(sub) -> argparse.ArgumentParser:
    t = sub.add_parser("train", help="train the MotionLLM-style model on a build (Ray Train; see docs/training.md)")
    t.add_argument("--config", required=True, help="YAML preset, e.g. configs/train/tiny_stage1.yaml")
    t.add_argument("--data", required=True, metavar="OUT", help="a finished build")
    t.add_argument("--out", required=True, metavar="RUN", help="run folder: config, metrics.jsonl, checkpoints/")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.max_steps=100")
    t.add_argument("--workers", type=int, help="training processes (default: train.workers)")
    t.add_argument("--resume", action="store_true", help="continue RUN from its latest checkpoint")
    t.add_argument("--executor", choices=["ray", "local"], default="ray",
                   help="ray: Ray Train TorchTrainer (default); local: this process, one worker")  # fmt: skip
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=_cmd_train)
    return t


def add_generate_parser(sub) -> argparse.ArgumentParser:
    g = sub.add_parser("generate", help="answer a question about a motion / video of a build with a trained model")
    g.add_argument("--checkpoint", required=True, metavar="RUN", help="a run folder (its latest checkpoint) or a checkpoint")
    g.add_argument("--data", required=True, metavar="OUT", help="the build holding the motion / video")
    g.add_argument("--motion-id")
    g.add_argument("--video-id")
    g.add_argument("--question", required=True, help="placeholders <motion> / <video> are added when missing")
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--set", action="append", metavar="KEY=VALUE", help="override the run's config, e.g. lm.path=…")
    g.set_defaults(fn=_cmd_generate)
    return g


def main(argv: list[str] | None = None) -> int:
    """``python -m model.cli train|generate|export|score|evaluate …`` (``movid`` has the same commands)."""
    p = argparse.ArgumentParser(prog="python -m model.cli")
    p.add_argument("-v", "--verbose", action="store_true")
    add_commands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    try:
        return args.fn(args)
    except ConfigError as exc:
        print(f"movid: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"movid: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
