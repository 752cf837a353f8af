#!/usr/bin/env bash
# One GPU session's work, sized for a short lease of one CUDA GPU (docs/BENCHMARKS.md, "On one GPU"):
#   1. the CUDA tests (tests/test_gpu.py: bfloat16, flash attention through SDPA, torch.compile, the
#      training loop), beside the trainings;
#   2. five trainings side by side on the one GPU, each for MINUTES of wall-clock time (max_minutes):
#        hrm_a     sudoku9_hrm_gpu at hidden 256, lr 5e-4 (3.4M parameters)
#        hrm_b     sudoku9_hrm_gpu: HRM, hidden 128, two layers per module (sudoku-9x9-hrm's stage 1)
#        trm       sudoku9_trm_cpu's TRM (hidden 128) from scratch on the same data and batch as hrm_b
#        trm_hard  sudoku9_trm_gpu_hard: the CPU-trained sudoku-9x9 continued on the harder mix
#        maze      maze_hard_gpu: maze_hard_cpu's TRM at hidden 256, batch 512
#      then each exported (hrm export, EMA weights);
#   3. the training-step throughput of the 27M HRM in bfloat16, eager and compiled, alone on the GPU.
# Needs data/sudoku9-hard-mix and data/maze-9-hard (their recipes' headers build them) and, for
# trm_hard, the run runs/sudoku9_trm_cpu_stage3 (README: the shipped 9x9 model's CPU stages).
# Writes to OUT (default runs/gpu): <run>.tar.gz (metrics, config, log, export) and gpu.log.
#   bash benchmarks/gpu_runs.sh                       # on the GPU machine
#   DEVICE=cpu MINUTES=0.05 LOG_EVERY=1 PY=.venv/bin/python bash benchmarks/gpu_runs.sh   # a dry run on a CPU
set -u
PY=${PY:-python3}
MINUTES=${MINUTES:-5}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-runs/gpu}
WORK=${WORK:-runs/gpu-work}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LOG=$OUT/gpu.log
say() { echo "[$(date +%T)] $*" | tee -a "$LOG"; }

say "python: $($PY -c 'import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())')"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$LOG"

# -- the trainings, side by side
# the time decides each run's length: max_steps out of reach, one checkpoint, at the end
COMMON="device=$DEVICE max_minutes=$MINUTES max_steps=100000 checkpoint_interval=100000 keep_checkpoints=1"
COMMON="$COMMON progress=false tensorboard=false threads=2 log_interval=${LOG_EVERY:-50}"
declare -A RUNS=(
  [hrm_a]="sudoku9_hrm_gpu arch.hidden_size=256 lr=5e-4"
  [hrm_b]="sudoku9_hrm_gpu"
  [trm]="sudoku9_trm_cpu data_path=data/sudoku9-hard-mix global_batch_size=512 lr_warmup_steps=300 arch.forward_dtype=bfloat16 lr_min_ratio=1.0 eval_interval=25 eval_max_batches=null"
  [trm_hard]="sudoku9_trm_gpu_hard"
  [maze]="maze_hard_gpu"
)
declare -A PIDS
LIMIT=$($PY -c "print(int(float('$MINUTES') * 60 + 150))")  # seconds: a run that overstays is stopped
for name in "${!RUNS[@]}"; do
  rm -rf "${WORK:?}/$name"
  # shellcheck disable=SC2086
  timeout "$LIMIT" $PY -m hrm train ${RUNS[$name]} $COMMON "run_dir=$WORK/$name" > "$WORK/$name.log" 2>&1 &
  PIDS[$name]=$!
  say "started $name: ${RUNS[$name]}"
done

say "CUDA tests"
timeout 240 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15 | tee -a "$LOG"

for name in "${!PIDS[@]}"; do
  wait "${PIDS[$name]}"
  say "$name ended: rc $?; $(tail -2 "$WORK/$name.log" | tr '\n' ' ' | cut -c1-300)"
done

# -- export and pack each run
for name in "${!RUNS[@]}"; do
  $PY -m hrm export "$WORK/$name" "$WORK/$name/export" --overwrite >> "$LOG" 2>&1 || say "$name: export failed"
  cp "$WORK/$name.log" "$WORK/$name/train.log"
  tar -czf "$OUT/$name.tar.gz" -C "$WORK" "$name/metrics.jsonl" "$name/config.yaml" "$name/train.log" \
    $(cd "$WORK" && ls -d "$name/export" 2>/dev/null) 2>> "$LOG"
done

# -- training-step throughput of the 27M HRM, alone on the GPU
if [ "$DEVICE" = cuda ]; then
  for flag in "" "--compile"; do
    say "throughput 27m bfloat16 $flag"
    # shellcheck disable=SC2086
    timeout 100 $PY benchmarks/train_throughput.py --config small 27m --batch 768 768 --steps 8 --warmup 3 \
      --device cuda --dtype bfloat16 $flag 2>&1 | tail -6 | tee -a "$LOG"
  done
  cp benchmarks/results/train_throughput-cuda-bfloat16*.json "$OUT/" 2>/dev/null
fi
say "done"
