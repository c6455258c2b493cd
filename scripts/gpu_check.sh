#!/usr/bin/env bash
# Everything a session with a CUDA machine should run, in one call (about 3-5 minutes on an H100):
#   device run: command="bash scripts/gpu_check.sh", timeout_s=600
# Writes checks.log, gpu_check.json, bench.txt, bench.json and pytest.log to $OUT.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-/tmp/dreamer_gpu_check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 scripts/gpu_check.py --out "$OUT" 2>&1 | tee "$OUT/checks.log"
python3 -m pytest tests/test_fast.py -q -k cuda -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log"
python3 -m dreamer bench --device cuda --repeats 5 --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt"
