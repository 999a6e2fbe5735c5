# One device call (~250 s): the position-rotated A/B of HEAD, HEAD2 (the same module again), F3 and cuBLAS.
set -o pipefail
source benchmarks/scratch/common.sh
ROUNDS=4 REPLAYS=10 timeout 400 python3 benchmarks/scratch/ab_rot.py 2>&1 | grep -v Warn | tee $OUT/ab_rot.md
