#!/usr/bin/env bash
# Every GPU figure of issue 23 in at most 8 minutes on one H100/H200, most valuable first.
#
#   bash benchmarks/gpu_check.sh --out DIR                        # on the GPU machine, from the project root
#   bash benchmarks/gpu_check.sh --out DIR --accelerator cpu --smoke   # the same steps on CPU (tested)
#
# Steps, each under its own `timeout` and all under one deadline (--budget-s, default 470 s,
# wheel install included), so the whole check never runs past it:
#   train_1B     (140 s) bench_train_gpu.py --sizes 1B: baseline vs 2A+4M hybrid, tokens/s and MFU per kernel
#                choice (a7bc85e's defaults, today's, compiled layers, compiled + selective
#                checkpointing at micro-batch 16, te where it imports), ratios to the first choice;
#                each choice's pair is printed when done, so a timeout keeps whole pairs
#   decode       (60 s) bench_inference.py on CUDA: ms/token of eager, cuda-graph and compile decode, 1B
#                hybrid and baseline at T=512 and 8192, ratios to eager, greedy agreement
#   gpu_tests    (120 s) pytest -m gpu (model, kernels, TP, MAD, pretrain rung, GPU ladder, decode, packed ...)
#   packed       (70 s) bench_packed_search.py: a random search on the GPU ladder's gpu-narrow rung in bf16, one
#                worker per GPU vs search.workers_per_gpu=4: trials per minute and their ratio, trial seconds
#   trial        (120 s) bench_trial_overhead.py: a worker's first vs later trials (eager, layers compiled once,
#                whole model compiled per trial) and rung_cost_s of gpu-narrow / gpu-search (their cost_s)
#   train_350M   (60 s) bench_train_gpu.py --sizes 350M (what time is left)
# On CPU each timeout is 4 times longer (still under the deadline) and the gpu tests are only collected.
# Every step's output goes to DIR/<step>.log; its `name: value` lines to DIR/figures.txt, with
# `gpu_check_<step>: ok|timeout|failed (rc N) in S s`; DIR/env.txt records the commit and the device.
# With .whl/device_env.sh present (../shared/gpu/README.md: a machine without network) the
# wheels are installed first and PYTHONPATH points at them.
set -u
out="" accelerator=gpu smoke=0 budget_s=470
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --accelerator) accelerator="$2"; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --budget-s) budget_s="$2"; shift 2 ;;
    *) echo "error: unknown argument $1 (use --out DIR [--accelerator gpu|cpu] [--smoke] [--budget-s S])" >&2
       exit 2 ;;
  esac
done
if [ -z "$out" ]; then echo "error: --out DIR is required (where the logs go)" >&2; exit 2; fi
case "$accelerator" in gpu|cpu) ;; *) echo "error: --accelerator must be gpu or cpu, got $accelerator" >&2; exit 2 ;; esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2
mkdir -p "$out" || exit 2
out="$(cd "$out" && pwd)"
start=$SECONDS
scale=1  # each step's timeout is sized for the GPU; a CPU smoke run may take 4 times as long (within the budget)
[ "$accelerator" = cpu ] && scale=4
figures="$out/figures.txt"
: > "$figures"

left() { echo $(( budget_s - (SECONDS - start) )); }
cap() { local l; l=$(left); [ "$l" -lt 1 ] && l=1; [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }  # min(S, time left)

# step NAME TIMEOUT_S COMMAND...: run under min(TIMEOUT_S, time left), log, collect name: value lines.
step() {
  local name="$1" limit="$2"; shift 2
  local remaining; remaining=$(left)
  if [ "$remaining" -lt 20 ]; then
    echo "gpu_check_$name: not run (budget spent)" | tee -a "$figures"; return
  fi
  limit=$(( limit * scale ))
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  local t0=$SECONDS rc
  echo "== $name (timeout ${limit} s): $*" >&2
  timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
  rc=$?
  grep -E '^[][A-Za-z0-9_.=+-]+: ' "$out/$name.log" | grep -v '^gpu_check_' >> "$figures"
  local status=ok
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; elif [ $rc -ne 0 ]; then status="failed (rc $rc)"; fi
  echo "gpu_check_$name: $status in $(( SECONDS - t0 )) s" | tee -a "$figures"
}

if [ "$accelerator" = gpu ] && [ -f .whl/device_env.sh ]; then
  timeout "$(cap 90)" bash .whl/device_env.sh > "$out/install.log" 2>&1 || echo "gpu_check_install: failed (see install.log)" | tee -a "$figures"
  export PYTHONPATH="/tmp/site:$root${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
fi
py="${PYTHON:-python3}"
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
  echo "accelerator: $accelerator smoke: $smoke budget_s: $budget_s"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  timeout "$(cap 30)" "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices', torch.cuda.device_count())"
} > "$out/env.txt" 2>&1

if [ "$smoke" = 1 ]; then
  train_args=(--accelerator "$accelerator" --smoke --seq-len 32 --micro-batch 4 --steps 2)
  decode_args=(--quick --devices "$([ "$accelerator" = gpu ] && echo cuda || echo cpu)" --decode 2)
  packed_args=(--accelerator "$accelerator" --smoke --workers-per-gpu 2)
  trial_args=(--accelerator "$accelerator" --smoke --modes eager)
else
  train_args=(--accelerator "$accelerator" --steps 8)
  decode_args=(--devices cuda --target 1B --cuda-contexts 512,8192 --reps 2)
  packed_args=(--accelerator "$accelerator" --workers-per-gpu 4 --trials 8)
  trial_args=(--accelerator "$accelerator" --trials 2 --rung-costs)
fi

step train_1B 140 "$py" -u benchmarks/bench_train_gpu.py --sizes 1B "${train_args[@]}"
step decode 60 "$py" -u benchmarks/bench_inference.py "${decode_args[@]}"
if [ "$accelerator" = gpu ]; then
  step gpu_tests 120 "$py" -m pytest -q -m gpu tests
else  # no GPU: the gpu tests are only collected (a check that they import)
  step gpu_tests 80 "$py" -m pytest -q -m gpu --collect-only tests
fi
step packed 70 "$py" -u benchmarks/bench_packed_search.py "${packed_args[@]}"
step trial 120 "$py" -u benchmarks/bench_trial_overhead.py "${trial_args[@]}"
[ "$smoke" = 1 ] || step train_350M 60 "$py" -u benchmarks/bench_train_gpu.py --sizes 350M "${train_args[@]}"
echo "gpu_check_total_s: $(( SECONDS - start ))" | tee -a "$figures"
echo "logs and figures: $out" >&2
