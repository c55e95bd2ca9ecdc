#!/usr/bin/env bash
# Back-to-back speed comparison on one file, same machine, same run:
#   pipeline bench (decode alone, CNN alone, extract end to end),
#   the ffmpeg CLI decoding + scaling + cropping to RGB (the decode ceiling),
#   ../shared/bench/reference_pipeline.py with ONNX Runtime and with PyTorch.
# Usage: bench/compare.sh VIDEO [PIPELINE_BINARY]
# Needs: the reference venv (see reference_pipeline.py's docstring) at $REF_VENV
#        (default ../.venv-ref) and the ffmpeg CLI.
set -euo pipefail
video=$1
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${2:-${CARGO_TARGET_DIR:-$root/target}/debug/pipeline}
ref=$root/../shared/bench/reference_pipeline.py
venv=${REF_VENV:-$root/../.venv-ref}
threads=$(nproc)

echo "# $(basename "$video") on $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "## pipeline bench"
"$bin" bench "$video" --device cpu --repeats "${REPEATS:-5}" 2>/dev/null

echo "## ffmpeg CLI: decode + scale shorter side to 224 + centre crop, RGB24"
frames=$(ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$video")
vf="scale=w='if(lt(iw,ih),224,-2)':h='if(lt(iw,ih),-2,224)',crop=224:224,format=rgb24"
best=0
for _ in 1 2 3; do
  start=$(date +%s.%N)
  ffmpeg -nostdin -v error -i "$video" -vf "$vf" -f null -
  end=$(date +%s.%N)
  best=$(python3 -c "print(max($best, $frames / ($end - $start)))")
done
printf 'ffmpeg   %8.1f frames/s best of 3 (%s frames)\n' "$best" "$frames"

for engine in ort torch; do
  echo "## reference_pipeline.py --engine $engine"
  "$venv/bin/python" "$ref" "$video" --engine "$engine" --threads "$threads" 2>/dev/null | tail -1
done
