# One device call (~250 s): the stream-K tests and GEMM test files, then the A/B of main (HEAD) against the branch
# with stream-K on (SK) and off (DP), with cuBLAS, blockwise and tensorwise.
set -o pipefail
source benchmarks/scratch/common.sh
echo "== GEMM tests (stream-K branch)"
(cd packages/breccia-triton && timeout 120 python3 -m pytest -q -rfE -p no:cacheprovider -n 16 --timeout=100 tests/test_triton_gemm_ws.py tests/test_triton_gemm.py 2>&1 | tail -15) | tee $OUT/pytest_gemm.txt
echo "== A/B: HEAD, DP, SK"
ROUNDS=2 timeout 300 python3 benchmarks/scratch/ab_sk.py 2>&1 | grep -v Warn | tee $OUT/ab_sk.md
