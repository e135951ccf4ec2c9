#!/usr/bin/env bash
# The GPU proof in one call of under 6 minutes on a lent H100/H200.
#
#   1. the gpu-marked tests: every CUDA kernel against its NumPy twin, on awkward sizes;
#   2. compute-sanitizer memcheck and racecheck on the kernel tests (where the card allows);
#   3. one epoch of train.py's default CNN on real Fashion-MNIST, on the GPU;
#   4. mpirun -n 2 with both ranks on the one GPU (a short train.py run);
#   5. every kernel benchmark against PyTorch, each with the device-to-device copy
#      bandwidth measured in the same run, and the kernels' targets printed as ratios
#      (batch norm: share of copy bandwidth against 85% / 70%, speed-up against cuDNN;
#      prune: against torch.topk/kthvalue and torch.cat + topk over ResNet-50's weights;
#      SGD: against torch's foreach and fused SGD, with and without re-masking).
#
# Prepare here (no GPU needed), then run on the device machine from the repository root:
#   make gpu-prepare                      # Fashion-MNIST into .data/, the mpich wheel into .whl/
#   bash benchmarks/gpu_suite.sh          # the device tool: carry [".data", ".whl"]
# Each step has a time limit; together they stay under 6 minutes (370 s at the very worst).
# Results: $OUT (or benchmarks/results/gpu-run/): summary.md (printed last), suite.log,
# and results.tar.gz with every benchmark's JSON and markdown (card, date, versions in each).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-run}
RESULTS="$OUT/results"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD OMP_NUM_THREADS=4 MPLBACKEND=Agg
PY=${PYTHON:-python3}

step() {  # step NAME TIMEOUT COMMAND...: run and time it; a failure is logged, the suite goes on
    local name=$1 limit=$2; shift 2
    echo "=== $name"
    local start=$SECONDS
    timeout "$limit" "$@"
    echo "=== $name: exit $? after $((SECONDS - start)) s"
}

{
    echo "=== environment"
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    $PY -c "import sys, numpy, cupy, torch; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda)"

    if ls .whl/*.whl >/dev/null 2>&1; then  # mpiexec for step 4, carried as a wheel
        $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PATH=/tmp/site/bin:$PATH
        export PYTHONPATH=$PYTHONPATH:/tmp/site
    fi

    step cuda-available 20 $PY -c "import sys, minigrad as mg; sys.exit(0 if mg.cuda_is_available() else 'no usable GPU here')"
    step gpu-tests 90 $PY -m pytest -m gpu -q -rs -p no:cacheprovider tests
    if command -v compute-sanitizer >/dev/null; then
        KERNEL_TESTS="tests/test_batchnorm_kernels.py tests/test_sgd_kernel.py tests/test_prune_kernels.py"
        step memcheck 45 compute-sanitizer --tool memcheck --error-exitcode 1 \
            $PY -m pytest -m gpu -q -x -p no:cacheprovider $KERNEL_TESTS
        step racecheck 30 compute-sanitizer --tool racecheck --error-exitcode 1 \
            $PY -m pytest -m gpu -q -x -p no:cacheprovider tests/test_batchnorm_kernels.py
    fi
    step train-1-epoch 60 $PY train.py --device cuda --epochs 1 --data-dir .data/fashion-mnist \
        --no-progress --checkpoint /tmp/checkpoints --log "$RESULTS/train_gpu.jsonl"
    MPIEXEC=$(command -v mpiexec || true)
    if [ -n "$MPIEXEC" ]; then
        step mpirun-2-ranks 40 "$MPIEXEC" -n 2 $PY train.py --device cuda --epochs 1 --train-samples 8192 \
            --data-dir .data/fashion-mnist --no-progress --checkpoint /tmp/checkpoints-mpi
    else
        echo "=== mpirun-2-ranks: exit 127 after 0 s (no mpiexec: run make gpu-prepare and carry .whl)"
    fi
    step bench-batchnorm 40 $PY benchmarks/bench_batchnorm.py --quick --out "$RESULTS"
    step bench-sgd 25 $PY benchmarks/bench_sgd.py --quick --out "$RESULTS"
    step bench-prune 35 $PY benchmarks/bench_prune.py --quick --out "$RESULTS/bench_prune_gpu.json"
    step bench-data 15 $PY benchmarks/bench_data.py --device cuda --repeats 3 \
        --data-dir .data/fashion-mnist --output-dir "$RESULTS"
} 2>&1 | tee "$OUT/suite.log"

tar -czf "$OUT/results.tar.gz" -C "$OUT" results
$PY benchmarks/gpu_summary.py "$OUT/suite.log" "$RESULTS" > "$OUT/summary.md"
cat "$OUT/summary.md"
grep -q "^=== .*: exit [1-9]" "$OUT/suite.log" && exit 1
exit 0
