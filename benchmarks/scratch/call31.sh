# One device call (~590 s): the GEMM test files, the acceptance GEMM table on this branch's kernel (early activation
# scales by default; "128x128 s5 late scales" is main's kernel), then the power probe of both at two shapes.
set -o pipefail
T0=$SECONDS
source benchmarks/scratch/common.sh
echo "== GEMM test files"
(cd packages/breccia-triton && timeout 100 python3 -m pytest -q -rfE -p no:cacheprovider -n 16 --timeout=90 tests/test_triton_gemm_ws.py tests/test_triton_gemm.py 2>&1 | tail -5) | tee $OUT/pytest_gemm.txt
left=$((${TOTAL:-470} - SECONDS + T0)); echo "== GEMM acceptance table (${left} s left)"
timeout $left python3 benchmarks/bench_gpu.py --sections gemm --no-ptr --configs none --budget $((left - 25)) --out $OUT 2>&1 | tee $OUT/gemm.log | tail -40
echo "== power probe ($((SECONDS - T0)) s)"
PROBE_SHAPES="16384,7168,16384 4096,7168,16384" PROBE_WS_CONFIGS="128x128 s5 late scales" SECONDS_PER_CASE=3 timeout 100 python3 benchmarks/probe_gemm_power.py 2>&1 | grep -v Warn | tee $OUT/power.md
