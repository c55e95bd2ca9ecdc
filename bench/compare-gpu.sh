#!/usr/bin/env bash
# GPU speed comparison on one file, same machine, same run:
#   pipeline bench --device wgpu (decode alone, CNN alone, extract and run end to end, and the
#   layer-by-layer profile of the CNN), f32 and f16,
#   bench/reference_pipeline.py --engine torch --cuda (PyTorch eager on CUDA), f32 and --half,
# all at the same CNN batch size.
# Usage: bench/compare-gpu.sh VIDEO [PIPELINE_BINARY]
#   The binary must have the GPU path: cargo build --release -p pipeline --features gpu
# Needs: a Python ($PYTHON, default python3) with CUDA PyTorch, numpy, av and
#        efficientnet-lite-pytorch==0.1.0; the reference weights at $REF_WEIGHTS (default
#        ../shared/reference/efficientnet-lite0-57934424.pth beside the checkout).
# Env: BATCH (default 64), REPEATS (default 5), PRECISIONS (default "f32 f16").
set -euo pipefail
video=$1
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${2:-${CARGO_TARGET_DIR:-$root/target}/release/pipeline}
py=${PYTHON:-python3}
batch=${BATCH:-64}
weights=${REF_WEIGHTS:-$root/../shared/reference/efficientnet-lite0-57934424.pth}
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)

echo "# $(basename "$video") on ${gpu:-an unnamed GPU}, $(nproc) cores, batch $batch, $(date -u +%Y-%m-%d)"
for precision in ${PRECISIONS:-f32 f16}; do
  echo "## pipeline bench --device wgpu --precision $precision"
  "$bin" bench "$video" --device wgpu --stage all,layers --precision "$precision" --batch "$batch" \
    --repeats "${REPEATS:-5}" 2>/dev/null
done
for half in "" --half; do
  echo "## reference_pipeline.py --engine torch --cuda $half"
  "$py" "$root/bench/reference_pipeline.py" "$video" --engine torch --cuda $half \
    --batch "$batch" --threads "$(nproc)" --weights "$weights" 2>/dev/null | tail -1
done
