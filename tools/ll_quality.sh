#!/usr/bin/env bash
# What the low-latency encoder settings cost in quality (`make ll-quality`): PSNR of each
# video encoder the crate drives (x264, x265, SVT-AV1) with the settings it gives a rung
# (tools' own copy of src/pipeline/plan.rs: `veryfast`, the rung's bitrate, maxrate 1.1x,
# buffer 2x, a 2 s GOP), normally and for a ladder with parts (no B-frames, no lookahead;
# SVT-AV1 low delay), against a lossless source, with the FFmpeg CLI. Prints a Markdown table.
set -euo pipefail
SECONDS_OF_MEDIA=${SECONDS_OF_MEDIA:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A SOURCES=(
  [mandelbrot]="mandelbrot=size=1280x720:rate=30"
  [noise]="testsrc2=size=1280x720:rate=30,noise=alls=30:allf=t+u"
)
for name in mandelbrot noise; do
  ffmpeg -v error -f lavfi -i "${SOURCES[$name]}" -t "$SECONDS_OF_MEDIA" -pix_fmt yuv420p \
    -c:v ffv1 "$work/$name.mkv"
done

# encode SOURCE HEIGHT KBPS CODEC MODE -> prints PSNR (average, dB)
encode() {
  local src=$1 height=$2 kbps=$3 codec=$4 mode=$5
  local out="$work/out.mkv" rate="${kbps}k" max="$((kbps * 11 / 10))k" buf="$((kbps * 2))k"
  local args=()
  case "$codec/$mode" in
    x264/normal) args=(-c:v libx264 -preset veryfast -g 240 -x264-params scenecut=0:open-gop=0) ;;
    x264/ll) args=(-c:v libx264 -preset veryfast -g 240
      -x264-params scenecut=0:open-gop=0:bframes=0:rc-lookahead=0:sync-lookahead=0) ;;
    x265/normal) args=(-c:v libx265 -preset veryfast -g 240 -x265-params scenecut=0:open-gop=0:log-level=error) ;;
    x265/ll) args=(-c:v libx265 -preset veryfast -g 240
      -x265-params scenecut=0:open-gop=0:log-level=error:bframes=0:rc-lookahead=0) ;;
    svt/normal) args=(-c:v libsvtav1 -preset 10 -g 60 -svtav1-params scd=0) ;;
    svt/ll) args=(-c:v libsvtav1 -preset 10 -g 60 -svtav1-params scd=0:pred-struct=1) ;;
  esac
  # SVT-AV1 prints its configuration on stderr whatever the log level: kept for a failure.
  ffmpeg -v error -y -i "$src" -vf "scale=-2:$height" "${args[@]}" \
    -b:v "$rate" -maxrate "$max" -bufsize "$buf" "$out" 2>"$work/encode.log" \
    || { cat "$work/encode.log" >&2; exit 1; }
  ffmpeg -v info -i "$out" -i "$src" -lavfi "[1:v]scale=-2:$height[ref];[0:v][ref]psnr" \
    -f null - 2>&1 | sed -n 's/.*PSNR.* average:\([0-9.inf]*\).*/\1/p' | tail -1
}

echo "| source | encoder | rung | normal | low latency | cost |"
echo "|---|---|---|---:|---:|---:|"
for name in mandelbrot noise; do
  for codec in x264 x265 svt; do
    for rung in 720:2800 360:800; do
      height=${rung%%:*} kbps=${rung##*:}
      normal=$(encode "$work/$name.mkv" "$height" "$kbps" "$codec" normal)
      ll=$(encode "$work/$name.mkv" "$height" "$kbps" "$codec" ll)
      cost=$(python3 -c "print(f'{$normal - $ll:.2f}')")
      echo "| $name | $codec | ${height}p, $((kbps))k | $normal dB | $ll dB | $cost dB |"
    done
  done
done
