"""The ``movid`` entry point: one parser with the data side's commands (``pipeline.cli``: sample-data, build,
inspect, validate, requeue, report) and the consumer side's (``model.cli``: export, score, evaluate, train,
generate); the exit-code rules of ``pipeline.cli.run`` for all of them. Environment variables that the
libraries read are set here, before any command runs, and nowhere in library code."""

from __future__ import annotations

import argparse

from model import cli as model_cli
from pipeline import cli as pipeline_cli

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="movid", description="Build MoVid-style motion + video instruction data.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    pipeline_cli.add_commands(sub)
    model_cli.add_commands(sub)  # the trainer and the bench (docs/training.md)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    pipeline_cli.setup_process(args.verbose, pipeline_cli.ENVIRONMENT | model_cli.ENVIRONMENT)
    return pipeline_cli.run(args)
