#!/usr/bin/env bash
# GPU checks on a lent CUDA machine (its python3 has torch; BasicSR & co. travel as wheels in .whl/).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/out}
nvidia-smi -L
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_esrgan_ldl_model.py tests/test_perceptual_metrics.py tests/test_option_files.py tests/test_aesop_loss_modes.py tests/test_device_support.py -k cuda 2>&1 | tail -15 | tee "$OUT/pytest_cuda.txt"
# AESOPLoss modes (incl. the authors' formulation under PyTorch's default TF32, and with TF32 off) against
# float64, their speed, and whole ESRGAN+LDL steps at the paper's sizes (batch 16, 128 px)
python3 scripts/benchmark_aesop_loss.py --device cuda 2>&1 | grep -v WARNING | tee "$OUT/bench_cuda.txt"
