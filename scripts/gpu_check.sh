#!/usr/bin/env bash
# Everything a session with a CUDA machine should run, in one call (about 4-6 minutes on an H100):
#   device run: command="bash scripts/gpu_check.sh", timeout_s=600
# 1. scripts/gpu_check.py: the backend on the GPU (precisions, CUDA graphs in both loops, tiling);
# 2. the CUDA tests of the backend, the loops and tiling;
# 3. the full `dreamer bench` (all cases, render384 included).
# Writes gpu.txt, checks.log, gpu_check.json, pytest.log, bench.txt and bench.json to $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/dreamer_gpu_check}"
mkdir -p "$OUT"
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 scripts/gpu_check.py --out "$OUT" 2>&1 | tee "$OUT/checks.log" || status=1
python3 -m pytest tests/test_backend.py tests/test_engine.py tests/test_render.py tests/test_tiling.py -q -k cuda \
    -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log" || status=1
python3 -m dreamer bench --device cuda --repeats 5 --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt" || status=1
exit $status
