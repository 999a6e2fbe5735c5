#!/usr/bin/env bash
# Issue 5's GPU checks in the order one device call can hold them (each part well under 10 minutes on an H200):
#   bash benchmarks/gpu_acceptance.sh OUT_DIR [tests|cast|gemm|small|all]
# "tests": the whole breccia-triton suite at full size (-n 16, a per-test limit, so a stuck test is named);
# "cast" / "gemm" / "small" (small-M GEMM and W4A16): benchmarks/bench_gpu.py's sections, every ratio against a
# baseline timed in the same run. Logs and markdown tables land in OUT_DIR.
set -uo pipefail  # a failing part (a test, a section) does not stop the parts after it
out=${1:?usage: gpu_acceptance.sh OUT_DIR [tests|cast|gemm|small|all]}
part=${2:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export PYTHONPATH=$root/packages/breccia-core/src:$root/packages/breccia-torch/src:$root/packages/breccia-triton/src:$root/benchmarks
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv >"$out/card.txt"
python3 -c "import torch, triton; print(torch.__version__, triton.__version__)" >>"$out/card.txt"
run() { [ "$part" = all ] || [ "$part" = "$1" ]; }
if run tests; then
    (cd "$root/packages/breccia-triton" &&
        python3 -m pytest -q -rfEs -p no:cacheprovider -n 16 --timeout=240 --durations=25 tests 2>&1) |
        grep -v -e PytestBenchmarkWarning -e 'warner(' | tee "$out/pytest.log" | tail -40
fi
if run cast; then
    python3 "$root/benchmarks/bench_gpu.py" --sections cast --tiles 8192/4 --budget 400 --out "$out" | tee "$out/cast.log"
fi
if run gemm; then
    python3 "$root/benchmarks/bench_gpu.py" --sections gemm --no-ptr --configs none --budget 450 --out "$out" |
        tee "$out/gemm.log"
fi
if run small; then
    python3 "$root/benchmarks/bench_gpu.py" --sections small,w4a16 --budget 400 --out "$out" | tee "$out/small.log"
fi
