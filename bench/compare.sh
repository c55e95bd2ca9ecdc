#!/usr/bin/env bash
# Speed comparison on one file, same machine, interleaved: ROUNDS rounds (default 3), each
# running back to back
#   pipeline bench (decode alone, CNN alone, extract and run end to end),
#   the ffmpeg CLI decoding + scaling + cropping to RGB (the decode ceiling; best of 3),
#   ../shared/bench/reference_pipeline.py with ONNX Runtime and with PyTorch.
# A shared machine's speed drifts by 20% and more within minutes, so each ratio is taken
# within a round and the summary gives the median of the rounds' ratios and their range.
# Usage: bench/compare.sh VIDEO [PIPELINE_BINARY]
#   KERNELS="avx2 portable" also times the CNN and extract on those CPU kernel paths each round
#   (`pipeline info` lists the paths this CPU runs; the default run takes the fastest).
#   PRECISIONS=bf16 likewise times them with `--precision bf16` (CPUs with AVX-512 BF16).
#   MOTION=off (the default) leaves motion out of decode, extract and run, as the reference
#   pipelines measure none; MOTION=auto times them as `run` and `extract` run by default.
# Needs: the reference venv (see reference_pipeline.py's docstring) at $REF_VENV
#        (default ../.venv-ref) and the ffmpeg CLI.
set -euo pipefail
video=$1
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${2:-${CARGO_TARGET_DIR:-$root/target}/debug/pipeline}
ref=$root/../shared/bench/reference_pipeline.py
venv=${REF_VENV:-$root/../.venv-ref}
threads=$(nproc)
rounds=${ROUNDS:-3}
motion=${MOTION:-off}
kernels=${KERNELS:-}
precisions=${PRECISIONS:-}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

for k in $kernels; do
  "$bin" info 2>/dev/null | grep -q -- "--kernels.* $k\b" \
    || { echo "this CPU does not run --kernels $k (see \`pipeline info\`)" >&2; exit 2; }
done
for p in $precisions; do
  "$bin" info 2>/dev/null | grep -q -- "--precision $p available" \
    || { echo "this CPU does not run --precision $p (see \`pipeline info\`)" >&2; exit 2; }
done
echo "# $(basename "$video") on $(nproc) cores, $(date -u +%Y-%m-%d), $rounds rounds, motion $motion"
frames=$(ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$video")
vf="scale=w='if(lt(iw,ih),224,-2)':h='if(lt(iw,ih),-2,224)',crop=224:224,format=rgb24"
for round in $(seq "$rounds"); do
  echo "## round $round"
  "$bin" bench "$video" --device cpu --stage decode,cnn,extract,run --repeats "${REPEATS:-3}" \
    --motion "$motion" 2>/dev/null | grep 'frames/s median' | sed "s/^/ours $round /" | tee -a "$log"
  for k in $kernels; do
    "$bin" bench "$video" --device cpu --stage cnn,extract --kernels "$k" --repeats "${REPEATS:-3}" \
      --motion "$motion" 2>/dev/null | grep 'frames/s median' | sed "s/^/ours-$k $round /" | tee -a "$log"
  done
  for p in $precisions; do
    "$bin" bench "$video" --device cpu --stage cnn,extract --precision "$p" --repeats "${REPEATS:-3}" \
      --motion "$motion" 2>/dev/null | grep 'frames/s median' | sed "s/^/ours-$p $round /" | tee -a "$log"
  done
  best=0 # the CLI's best of 3 (its start-up is a good part of a short file's time)
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    ffmpeg -nostdin -v error -i "$video" -vf "$vf" -f null -
    end=$(date +%s.%N)
    best=$(python3 -c "print(max($best, $frames / ($end - $start)))")
  done
  echo "ffmpeg $round decode $best" | tee -a "$log"
  for engine in ort torch; do
    "$venv/bin/python" "$ref" "$video" --engine "$engine" --threads "$threads" 2>/dev/null \
      | tail -1 | sed "s/^/$engine $round /" | tee -a "$log"
  done
done

echo "## medians over the rounds (frames/s), and of the rounds' ratios [their range]"
python3 - "$log" <<'EOF'
import re, statistics, sys
runs = {}  # (who, stage) -> {round: frames/s}
for line in open(sys.argv[1]):
    who, rnd, rest = line.split(maxsplit=2)
    if who.startswith("ours"):
        stage, fps = rest.split()[:2]
        runs.setdefault((who, stage), {})[rnd] = float(fps)
    elif who == "ffmpeg":
        runs.setdefault((who, "decode"), {})[rnd] = float(rest.split()[1])
    else:
        for stage, fps in re.findall(r"(\w+)=([\d.]+)fps", rest):
            runs.setdefault((who, stage), {})[rnd] = float(fps)

def median(who, stage):
    return statistics.median(runs[(who, stage)].values())

paths = sorted({who for who, _ in runs if who.startswith("ours-")})
for who, stage in [("ours", "decode"), ("ffmpeg", "decode"), ("ours", "cnn"), ("ort", "cnn"),
                   ("torch", "cnn"), ("ours", "extract"), ("ours", "run"),
                   ("ort", "end_to_end"), ("torch", "end_to_end")] + [
                   (p, s) for p in paths for s in ("cnn", "extract")]:
    print(f"{who:14} {stage:10} {median(who, stage):8.1f}")
for (a, b) in [(("ours", "decode"), ("ffmpeg", "decode")), (("ours", "cnn"), ("ort", "cnn")),
               (("ours", "cnn"), ("torch", "cnn")), (("ours", "extract"), ("ort", "end_to_end")),
               (("ours", "extract"), ("torch", "end_to_end")), (("ours", "run"), ("ort", "end_to_end"))] + [
               pair for p in paths for pair in [((p, "cnn"), ("ort", "cnn")),
                                                 ((p, "cnn"), ("ours", "cnn")),
                                                 ((p, "extract"), ("ort", "end_to_end"))]]:
    ratios = [runs[a][r] / runs[b][r] for r in runs[a] if r in runs[b]]
    print(f"{' '.join(a):22} / {' '.join(b):16} {statistics.median(ratios):5.2f}x"
          f" [{min(ratios):.2f}-{max(ratios):.2f}]")
EOF
