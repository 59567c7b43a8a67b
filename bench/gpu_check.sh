#!/usr/bin/env bash
# The trainer's GPU paths on one CUDA GPU, end to end on the tiny models (a few minutes):
#   1. `movid train --executor local` (this process, bf16 autocast on CUDA), stage 1 and stage 2;
#   2. torchrun with one process (an nccl process group): a run, and an fsdp-strategy run stopped at step 3
#      and resumed, their losses compared (one process trains the model unwrapped: DDP and FSDP2 wrapping
#      need >= 2 GPUs, since nccl refuses two ranks on one GPU);
#   3. `generate` from the resumed run's checkpoint on the GPU.
# Needs a build and the tiny models (CPU machine: `.venv/bin/python bench/train.py` makes both under
# bench_out/train), and torch with CUDA, transformers, peft, datasets and pyarrow where it runs.
#
#   bash bench/gpu_check.sh [DATA [TINY [LOGS]]]
#   (defaults: bench_out/train/out-40, bench_out/train/tiny, bench_out/gpu_check; PYTHON=… picks the interpreter)
#
# Each step's exit status and the losses are printed at the end; the script exits non-zero if a step failed.
set -u
DATA=${1:-bench_out/train/out-40}
TINY=${2:-bench_out/train/tiny}
LOGS=${3:-bench_out/gpu_check}
PY=${PYTHON:-python3}
mkdir -p "$LOGS"
RUNS=$(mktemp -d)
SETS=(--set "lm.path=$TINY/lm" --set "video.tower=$TINY/vision" --set train.tensorboard=false --set train.log_every=1
      --set data.loader_threads=2)
declare -A RC

step() {  # step NAME command...: run, log to $LOGS/NAME.log, remember the exit status
  local name=$1
  shift
  local t0=$SECONDS
  "$@" >"$LOGS/$name.log" 2>&1
  RC[$name]=$?
  echo "== $name: exit ${RC[$name]} in $((SECONDS - t0)) s"
  [ "${RC[$name]}" = 0 ] || tail -25 "$LOGS/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, transformers, peft, pyarrow, datasets; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), '| transformers', transformers.__version__, '| peft', peft.__version__,
'| pyarrow', pyarrow.__version__, '| datasets', datasets.__version__)"

step local_stage1 $PY -m model.cli train --executor local --quiet --config configs/train/tiny_stage1.yaml --data "$DATA" \
  --out "$RUNS/s1" "${SETS[@]}" --set train.max_steps=12
step local_stage2 $PY -m model.cli train --executor local --quiet --config configs/train/tiny_stage2.yaml --data "$DATA" \
  --out "$RUNS/s2" "${SETS[@]}" --set train.max_steps=12
TR=($PY -m torch.distributed.run --nproc-per-node 1 -m model.train --config configs/train/tiny_stage2.yaml --data "$DATA")
step torchrun_ddp "${TR[@]}" --out "$RUNS/ddp" "${SETS[@]}" --set train.max_steps=6 --set train.save_every=3
step torchrun_fsdp "${TR[@]}" --out "$RUNS/fsdp" "${SETS[@]}" --set train.max_steps=6 --set train.save_every=3 \
  --set train.strategy=fsdp --set train.stop_at_step=3
step torchrun_fsdp_resume "${TR[@]}" --out "$RUNS/fsdp" "${SETS[@]}" --set train.max_steps=6 --set train.save_every=3 \
  --set train.strategy=fsdp --resume
MID=$($PY -c "import pyarrow.dataset as d; print(d.dataset('$DATA/motion').to_table(columns=['motion_id']).column(0)[0])")
step generate $PY -m model.cli generate --checkpoint "$RUNS/fsdp" --data "$DATA" --motion-id "$MID" \
  --question "What is the person doing?" --max-new-tokens 16 --set "lm.path=$TINY/lm" --set "video.tower=$TINY/vision"

$PY - "$RUNS" <<'EOF'
import json, sys
from pathlib import Path

runs = Path(sys.argv[1])
def metrics(run):
    f = runs / run / "metrics.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.is_file() else []
for run in ("s1", "s2", "ddp", "fsdp"):
    m = [r for r in metrics(run) if "loss" in r]
    if m:
        print(f"{run:5} steps {[r['step'] for r in m]}  loss {m[0]['loss']:.4f} -> {m[-1]['loss']:.4f}  "
              f"samples/s {m[-1].get('samples_per_s', 0):.1f}")
ddp, fsdp = ([r for r in metrics(x) if "loss" in r] for x in ("ddp", "fsdp"))
if ddp and fsdp:
    print("DDP vs FSDP, per step |loss difference|:",
          [round(abs(a["loss"] - b["loss"]), 5) for a, b in zip(ddp, fsdp)])
EOF
for run in s1 s2 ddp fsdp; do [ -f "$RUNS/$run/metrics.jsonl" ] && cp "$RUNS/$run/metrics.jsonl" "$LOGS/$run.metrics.jsonl"; done
failed=0
for name in "${!RC[@]}"; do [ "${RC[$name]}" = 0 ] || failed=1; done
exit $failed
