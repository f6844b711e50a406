#!/usr/bin/env bash
# The GPU benchmark in one prepared run (fits one 10-minute command on an H100/H200):
# model speed (B/16, fp32/bf16/fp16, r in {0, 8, 13}), then server throughput and the
# open-vocabulary cost on CUDA. Python packages the machine lacks can travel as wheels in
# .whl/ (see BENCHMARKS.md). Usage: bash benchmarks/gpu.sh [OUT_DIR]
set -uo pipefail
OUT=${1:-runs/gpu}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"
timeout 150 python3 -m benchmarks.model --device cuda --no-onnx --reps 10 --rs 0 8 --batches 1 8 32 64 2>&1 | tee "$OUT/model.txt"
timeout 150 python3 -m benchmarks.model --device cuda --no-onnx --reps 10 --rs 8 --dtypes bf16 --batches 1 8 64 --compile 2>&1 | tee "$OUT/model-compiled.txt"
timeout 60 python3 -m benchmarks.model --device cuda --rs 8 --dtypes fp32 --batches 8 --onnx-rs 8 --reps 10 2>&1 | tee "$OUT/model-ort-cuda.txt"
timeout 100 python3 -m benchmarks.server --device cuda --dtype fp16 --concurrency 1 16 64 2>&1 | tee "$OUT/server.txt"
timeout 30 python3 -m pytest -q -m gpu tests/media/test_gpu_decode.py tests/server/test_compiled.py 2>&1 | tee "$OUT/gpu-tests.txt"
timeout 40 python3 -m benchmarks.decode --no-model --nvdec --sizes 720p 1080p --reps 3 2>&1 | tee "$OUT/decode.txt"
timeout 60 python3 -m benchmarks.server --device cuda --dtype fp16 --concurrency 64 --env ALT_DECODE_DEVICE=cuda 2>&1 | tee "$OUT/server-nvdec.txt"
