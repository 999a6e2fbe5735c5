# One device call (~560 s): the whole breccia-triton suite, breccia-torch's capture test and the acceptance GEMM table
# on this branch's kernel (early activation scales by default; "128x128 s5 late scales" is main's kernel).
set -o pipefail
T0=$SECONDS
source benchmarks/scratch/common.sh
echo "== breccia-triton suite"
(cd packages/breccia-triton && timeout 170 python3 -m pytest -q -rfEs -p no:cacheprovider -n 16 --timeout=150 tests 2>&1 | grep -v -e PytestBenchmarkWarning -e 'warner(' > $OUT/pytest_triton.log; tail -4 $OUT/pytest_triton.log)
echo "== breccia-torch capture ($((SECONDS - T0)) s)"
(cd packages/breccia-torch && timeout 40 python3 -m pytest -q -rfE -p no:cacheprovider --device cuda tests/test_torch_cast.py -k capture 2>&1 | tail -2) | tee $OUT/pytest_torch_capture.txt
left=$((${TOTAL:-560} - SECONDS + T0)); echo "== GEMM acceptance table (${left} s left)"
timeout $left python3 benchmarks/bench_gpu.py --sections gemm --no-ptr --configs none --budget $((left - 25)) --out $OUT 2>&1 | tee $OUT/gemm.log | tail -40
