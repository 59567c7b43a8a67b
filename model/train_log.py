"""What a training run reports: ``metrics.jsonl`` and TensorBoard on rank 0 (:class:`MetricsLog`), Ray Train
reports at checkpoints, a progress bar that follows ``metrics.jsonl`` from the driver (:func:`progress`), and
the libraries' own progress bars and chatter turned off (:func:`quiet_libraries`)."""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

__all__ = ["METRICS", "MetricsLog", "progress", "quiet_libraries", "read_metrics"]

log = logging.getLogger("model.train")
METRICS = "metrics.jsonl"


class MetricsLog:
    """Rank 0's record of logged steps: metrics.jsonl, TensorBoard when it is installed, Ray Train reports."""

    def __init__(self, run: Path, rank: int, on_ray: bool, tensorboard: bool):
        self.rank, self.on_ray, self.path, self.writer, self.last = rank, on_ray, run / METRICS, None, None
        if rank == 0 and tensorboard:
            try:  # here: optional, and it imports tensorboard's protobufs (~1 s)
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run / "tensorboard"))
            except ImportError:
                log.info("tensorboard is not installed: no TensorBoard logs (pip install tensorboard); metrics.jsonl has them")

    def write(self, record: dict) -> None:
        if self.rank == 0:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            if self.writer is not None:
                for k, v in record.items():
                    if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                        self.writer.add_scalar(f"train/{k}", v, record["step"])
                self.writer.flush()
        self.last = record

    def report(self) -> None:
        """Ray Train's record of the run (at checkpoints only: a report is a barrier of about a second)."""
        if self.on_ray and self.last is not None:
            import ray.train  # here: only a Ray Train worker gets here (Ray takes ~1 s to import)

            ray.train.report(self.last)  # every worker reports; rank 0's metrics are kept

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run: str | Path) -> list[dict]:
    path = Path(run) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


@contextmanager
def progress(run: Path, start: int, total: int, enabled: bool):
    """A progress bar fed from metrics.jsonl, whichever process or worker writes it."""
    if not enabled:
        yield
        return
    done = threading.Event()
    bar = tqdm(total=total or None, initial=start, desc="train", unit="step")

    def follow():
        seen = start
        while True:
            finished = done.wait(0.5)
            for r in read_metrics(run):
                if r["step"] > seen:
                    bar.update(r["step"] - seen)
                    seen = r["step"]
                    bar.set_postfix(loss=f"{r['loss']:.4f}", refresh=False)
            if finished:
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()


def quiet_libraries() -> None:
    """No progress bars from datasets and transformers, and transformers' warnings only as errors. (Their
    environment — offline hub, no tokenizer threads — is set by the entry points: ``model.ENVIRONMENT``.)"""
    try:  # here: both are heavy (seconds), and this runs only where the model does
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:
        pass
