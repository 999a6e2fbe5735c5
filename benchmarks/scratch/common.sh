set -o pipefail
export PYTHONUNBUFFERED=1
R=$PWD
export PYTHONPATH=$R/packages/breccia-core/src:$R/packages/breccia-torch/src:$R/packages/breccia-triton/src:$R/benchmarks
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv | tee $OUT/card.txt
python3 -c "import torch, triton; print(torch.__version__, triton.__version__, torch.cuda.get_device_name())" | tee -a $OUT/card.txt
