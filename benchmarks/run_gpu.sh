#!/usr/bin/env bash
# The accelerator figures in one run: the CUDA tests, then the step, implementation
# and clip benchmarks on one CUDA device, each log written to OUTDIR.
#
#   bash benchmarks/run_gpu.sh [OUTDIR]        (default OUTDIR: gpu-results)
#
# Run from the repository root with a python (PYTHON, default python3) that has a
# CUDA build of torch and specopt's dependencies; specopt itself is imported from
# this checkout. Every step runs even if an earlier one fails; the exit status is
# that of the first failure. About four minutes on one H200; the logs of such a
# run are in benchmarks/results/h200/.
set -uo pipefail

out=${1:-gpu-results}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

step() {
    local log=$1
    shift
    echo "== $*" | tee "$out/$log"
    "$@" 2>&1 | tee -a "$out/$log"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then status=$rc; fi
}

"$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'torch sees no CUDA device')" || exit
step gpu.txt nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
step tests.txt "$py" -m pytest -q -m cuda -p no:cacheprovider --continue-on-collection-errors tests
step step.txt "$py" benchmarks/bench_step.py --device cuda
step step_large.txt "$py" benchmarks/bench_step.py --device cuda --width 8192 --depth 8 --tensors 20000 --numel 1000
step impl_large.txt "$py" benchmarks/bench_impl.py --device cuda --tensors 200 --numel 1000000
step impl_small.txt "$py" benchmarks/bench_impl.py --device cuda --tensors 2000 --numel 10000 --repeats 10
step impl_huge.txt "$py" benchmarks/bench_impl.py --device cuda --tensors 16 --numel 33554432 \
    --optimizers adagrad,rmsprop,adamax,nadam,radam --dtypes float32 --repeats 10
step clip.txt "$py" benchmarks/bench_clip.py --device cuda --width 4096 --depth 8 --batch 512
step clip_small.txt "$py" benchmarks/bench_clip.py --device cuda --repeats 300
exit $status
