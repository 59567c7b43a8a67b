"""Trainer and data-loader throughput on CPU with the tiny model.

    .venv/bin/python bench/train.py [--motions 40] [--batch 8] [--steps 30] [--threads 2] [--workdir bench_out/train]

Builds sample data (``--motions`` clips, their mirrors and 10 videos) and the tiny local models once, then
measures on the stage-2 tiny preset (LoRA, motion encoder, CLIP tower, captions and QA of all modalities):

- the trainer's rate: forward + backward + AdamW step on batches collated beforehand (no data wait);
- the loader's rate: ``BatchLoader`` collating the same epoch plan (join, motion normalisation, placeholder
  expansion, padding, JPEG decoding of every video frame) with 0 and ``--threads`` threads, nothing training;
- end to end: ``train`` in this process for ``--steps`` steps, with the share of time spent waiting on data;
- intra-op threads: the trainer's rate with torch's default (one thread per core) and with one thread
  (``train.cpu_threads``' default on CPU), interleaved over ``--rounds`` rounds in this process: median and range.

Goals: the loader collates at least 5x faster than the trainer consumes; one intra-op thread is no slower
than torch's default (on a small machine that runs anything else, it is several times faster).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from model.config import load_train_config  # noqa: E402
from model.data import BatchLoader, TrainData, epoch_plan, local_motion_stats, local_tables  # noqa: E402
from model.loop import _make_optimizer  # noqa: E402
from model.motionllm import build_model, load_tokenizer, video_tower_geometry  # noqa: E402
from model.train import read_metrics, train  # noqa: E402
from model.train_log import quiet_libraries as _quiet_libraries  # noqa: E402


def _demo(work: Path, motions: int) -> tuple[Path, dict]:
    from model.tiny import build_corpus, write_tiny_assets
    from pipeline.build import build
    from pipeline.config import load_config
    from pipeline.sample_data import write_sample_humanml3d, write_sample_videos

    out = work / f"out-{motions}"
    if not (out / "manifest.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        write_sample_humanml3d(work / "humanml3d", motions, seed=0)
        write_sample_videos(work / "videos", work / "humanml3d", min(motions, 10))
        cfg = load_config(None, ["executor=local"], [f"humanml3d={work / 'humanml3d'}", f"video={work / 'videos'}"])
        build(cfg, str(out), show_progress=False)
    if not (work / "tiny" / "lm" / "config.json").is_file():
        write_tiny_assets(work / "tiny", build_corpus(out))
    return out, {"lm": str(work / "tiny" / "lm"), "vision": str(work / "tiny" / "vision")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motions", type=int, default=40)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default=str(ROOT / "bench_out" / "train"))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the thread comparison")
    args = ap.parse_args()
    default_threads = torch.get_num_threads()  # before anything sets it: torch's default on this machine
    _quiet_libraries()
    work = Path(args.workdir)
    out, assets = _demo(work, args.motions)
    sets = [f"lm.path={assets['lm']}", f"video.tower={assets['vision']}", f"train.batch_size={args.batch}",
            "train.tensorboard=false", "train.log_every=5"]  # fmt: skip
    cfg = load_train_config(ROOT / "configs" / "train" / "tiny_stage2.yaml", sets)
    tok, ids = load_tokenizer(cfg)
    data = TrainData(local_tables(cfg, out), cfg, local_motion_stats(out), ids, tok.pad_token_id, video_tower_geometry(cfg))
    plan = epoch_plan(data.seq_lens, seed=0, epoch=0, batch_size=args.batch, world_size=1)[:, 0]
    print(f"{len(data)} samples, {len(plan)} batches of {args.batch} per epoch; torch threads {torch.get_num_threads()}")

    # the trainer alone, on batches collated beforehand
    model, _ = build_model(cfg)
    model.train()
    optimizer = _make_optimizer(model, cfg)
    batches = [data.collate(b) for b in plan[: args.steps + 3]]
    keys = ("input_ids", "labels", "attention_mask", "motion", "motion_lengths", "frames")

    def trainer_rate(todo: list[dict], warmup: int) -> tuple[float, float]:
        for k, batch in enumerate(todo):
            if k == warmup:  # warm-up steps left out
                t0, samples, tokens = time.perf_counter(), 0, 0
            loss, aux = model(**{key: batch[key] for key in keys}, num_items=batch["num_items"])
            (loss + aux).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if k >= warmup:
                samples, tokens = samples + len(batch["input_ids"]), tokens + batch["num_tokens"]
        seconds = time.perf_counter() - t0
        return samples / seconds, tokens / seconds

    torch.set_num_threads(1)
    trainer = trainer_rate(batches, 3)

    # intra-op threads: torch's default against one, interleaved, the same batches
    threads_rates: dict[int, list[float]] = {default_threads: [], 1: []}
    for _ in range(args.rounds):
        for n in threads_rates:
            torch.set_num_threads(n)
            threads_rates[n].append(trainer_rate(batches, 1)[0])
    torch.set_num_threads(1)

    # the loader alone, over the whole epoch
    loader = {}
    for threads in sorted({0, args.threads}):
        t0, samples, tokens = time.perf_counter(), 0, 0
        for _, batch in BatchLoader(data, plan, 0, threads, prefetch=8):
            samples, tokens = samples + len(batch["input_ids"]), tokens + batch["num_tokens"]
        s = time.perf_counter() - t0
        loader[threads] = (samples / s, tokens / s)

    # end to end
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    cfg.train.max_steps = args.steps
    cfg.data.loader_threads = args.threads
    train(cfg, out, run, executor="local", show_progress=False)
    records = read_metrics(run)[1:] or read_metrics(run)  # the first window holds the warm-up
    e2e = sum(r["samples_per_s"] for r in records) / len(records)
    wait = sum(r["data_wait_share"] for r in records) / len(records)

    print(f"\n{'':34}{'samples/s':>12}{'tokens/s':>12}")
    print(f"{'trainer (fwd+bwd+AdamW, no data)':34}{trainer[0]:>12.1f}{trainer[1]:>12.0f}")
    for threads, (sps, tps) in loader.items():
        print(f"{f'loader, {threads} thread(s)':34}{sps:>12.1f}{tps:>12.0f}   {sps / trainer[0]:5.1f}x the trainer")
    print(f"{'end to end (train, local)':34}{e2e:>12.1f}{'':>12}   data wait {100 * wait:.1f}% of step time")
    best = max(s for s, _ in loader.values())
    print(f"\nloader / trainer = {best / trainer[0]:.1f}x (goal >= 5x): {'met' if best >= 5 * trainer[0] else 'NOT met'}")

    print(f"\ntrainer samples/s by intra-op threads ({args.rounds} interleaved rounds of {len(batches) - 1} steps; "
          f"median [min, max]):")  # fmt: skip
    for n, rates in threads_rates.items():
        label = f"{n} thread(s)" + (" (torch's default)" if n == default_threads else "") + (" (train.cpu_threads=1)" if n == 1 else "")
        print(f"  {label:<48}{statistics.median(rates):>8.1f} [{min(rates):.1f}, {max(rates):.1f}]")
    if default_threads != 1:
        ratio = statistics.median(threads_rates[1]) / statistics.median(threads_rates[default_threads])
        print(f"  one thread / default = {ratio:.2f}x (goal >= 1): {'met' if ratio >= 1 else 'NOT met'}")
    else:
        print("  torch's default is one thread on this machine: nothing to compare")
    print(f"command: .venv/bin/python bench/train.py --motions {args.motions} --batch {args.batch} --steps {args.steps} "
          f"--threads {args.threads} --rounds {args.rounds}")  # fmt: skip


if __name__ == "__main__":
    main()
