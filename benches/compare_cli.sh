#!/usr/bin/env bash
# Side by side: the crate's `transcode` example vs. the FFmpeg CLI doing the same work in
# one process. Two sections, each printing its own table: "file" (speed) and "live"
# (latency); SECTIONS picks them.
#
# Section "file" measures wall-clock time (and CPU user+sys, when /usr/bin/time is present) to
# turn one 10 s 1080p30 H.264/AAC MP4 into a 4-rung HLS VOD ladder (1080p 5000k, 720p
# 2800k, 480p 1400k, 360p 800k; x264 veryfast, 2 s segments, AAC 128k stereo per rung).
# Both tools decode the same file once, scale it four ways and encode all rungs in one
# process. Runs alternate crate, CLI, crate, CLI, ... so drift in machine load hits both.
# Every run's output is checked (master.m3u8, every variant playlist finished with
# #EXT-X-ENDLIST, 300 frames in the top rung) before its time counts.
#
# Section "live latency" (SECTIONS=live): both tools read the same kind of real-time source,
# a fresh `ffmpeg -re` publisher per tool run serving 720p30 H.264/AAC MPEG-TS on
# tcp://127.0.0.1:PORT (one-shot listener; its clock starts when the tool connects), and
# make a 2-rung live HLS ladder (720p 2800k, 360p 800k; x264 veryfast, 2 s segments, every
# segment kept listed). Per run it measures, polling every 20 ms:
#   first segment   process start -> the 720p (crate: 720p/index.m3u8; CLI: v1/index.m3u8)
#                   media playlist lists a segment. Includes connecting and probing the
#                   source: the FFmpeg CLI opens MPEG-TS with scan_all_pmts=1, which reads
#                   ~5 s of a live source before it starts (LIVE_CLI_IN_OPTS="-scan_all_pmts 0"
#                   removes that), the crate uses the libavformat default (0).
#   stop->ENDLIST   SIGINT (sent LIVE_STOP_AFTER s after the start, and not before the first
#                   segment is listed) -> every variant playlist has #EXT-X-ENDLIST
#   stop->exit      SIGINT -> the process has exited (crate: status 0; CLI: 0 or 255, which
#                   FFmpeg returns after "Exiting normally, received signal 2")
# Runs alternate crate, CLI, crate, CLI, ...; a run counts only when the master playlist lists
# both variants and each is finished and lists a segment.
#
# Run:   bash benches/compare_cli.sh        (or: make compare)
# Env:   SECTIONS="file live"  which sections run, in this order
#        RUNS=3            timed runs per tool (file section)
#        LIVE_RUNS=2       runs per tool (live section)
#        LIVE_STOP_AFTER=6 seconds after the tool's start to send SIGINT (live section)
#        LIVE_PORT=39170   first TCP port on 127.0.0.1 for the publishers (one per run,
#                          counting up)
#        LIVE_CLI_IN_OPTS= extra input options for the CLI in the live section (split on spaces)
#        WORK=out/compare  work dir: the input (made once, reused; delete it to remake),
#                          the outputs and the logs of the last run of each tool
#        CARGO=cargo       cargo binary
# Needs: ffmpeg and ffprobe on PATH (FFmpeg 5.1 with libx264), cargo; Linux /proc for the
#        live section.
# Exit:  0 when every run of both tools succeeded and verified; 1 at the first failure.

set -euo pipefail

RUNS=${RUNS:-3}
WORK=${WORK:-out/compare}
CARGO=${CARGO:-cargo}
DURATION=10   # seconds of media in the input
FRAMES=300    # DURATION * 30 fps

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "compare_cli: $*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
for tool in ffmpeg ffprobe "$CARGO"; do
    command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
# CPU user+sys comes from GNU time when it is there; without it the CPU column says n/a.
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then TIME_CMD=(/usr/bin/time -f "%U %S" -o); fi

mkdir -p "$WORK"
INPUT=$WORK/input.mp4
EXAMPLE=${CARGO_TARGET_DIR:-target}/release/examples/transcode

# --- 1. Reference input, made once -------------------------------------------------------
if [[ ! -s $INPUT ]]; then
    echo "generating $INPUT ..." >&2
    ffmpeg -y -hide_banner -v error \
        -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$DURATION" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$DURATION" \
        -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k -shortest \
        "$WORK/input.tmp.mp4"
    mv "$WORK/input.tmp.mp4" "$INPUT"
fi

# --- 2. Build the example once (not timed) -----------------------------------------------
echo "building the transcode example ..." >&2
"$CARGO" build --release --quiet --example transcode
[[ -x $EXAMPLE ]] || die "$EXAMPLE missing after the build"

# --- The two commands ----------------------------------------------------------------------
# cmd_NAME OUT: sets CMD to the command line of tool NAME writing to OUT.
cmd_crate() {
    CMD=("$EXAMPLE" "$INPUT" --out "$1" --ladder 1080p,720p,480p,360p --preset veryfast --segment 2)
}

cmd_cli() {
    CMD=(ffmpeg -y -v error -i "$INPUT"
        -filter_complex "[0:v]split=4[a][b][c][d];[a]scale=1920:1080[v0];[b]scale=1280:720[v1];[c]scale=854:480[v2];[d]scale=640:360[v3]"
        -map "[v0]" -map 0:a -map "[v1]" -map 0:a -map "[v2]" -map 0:a -map "[v3]" -map 0:a
        -c:v libx264 -preset veryfast -force_key_frames "expr:gte(t,n_forced*2)" -sc_threshold 0
        -b:v:0 5000k -b:v:1 2800k -b:v:2 1400k -b:v:3 800k
        -c:a aac -b:a 128k -ac 2
        -f hls -hls_time 2 -hls_playlist_type vod
        -var_stream_map "v:0,a:0 v:1,a:1 v:2,a:2 v:3,a:3"
        -master_pl_name master.m3u8 "$1/v%v/index.m3u8")
}

# --- 4. Output checks ----------------------------------------------------------------------
# verify_hls OUT TOP_PLAYLIST: master + 4 finished variant playlists, FRAMES frames on top.
verify_hls() {
    local out=$1 top=$2 uri n=0 frames
    [[ -s $out/master.m3u8 ]] || { echo "no $out/master.m3u8"; return 1; }
    while IFS= read -r uri; do
        uri=${uri%$'\r'}
        [[ -z $uri || $uri == \#* ]] && continue
        n=$((n + 1))
        [[ -s $out/$uri ]] || { echo "variant playlist $out/$uri missing"; return 1; }
        grep -q '^#EXT-X-ENDLIST' "$out/$uri" \
            || { echo "$out/$uri has no #EXT-X-ENDLIST"; return 1; }
    done <"$out/master.m3u8"
    ((n == 4)) || { echo "$out/master.m3u8 lists $n variants, expected 4"; return 1; }
    frames=$(ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=nb_read_frames -of csv=p=0 "$out/$top") \
        || { echo "ffprobe failed on $out/$top"; return 1; }
    # An MPEG-TS stream belongs to a program, so ffprobe prints it twice (under [PROGRAM]
    # and again at top level): keep the first non-empty value.
    frames=$(awk -F, 'NF { print $1; exit }' <<<"$frames")
    [[ $frames == "$FRAMES" ]] \
        || { echo "$out/$top has ${frames:-no} video frames, expected $FRAMES"; return 1; }
}

# --- 3. Timed runs -------------------------------------------------------------------------
# timed NAME RUN: runs tool NAME into a fresh $WORK/NAME, checks its output and appends
# "wall_s cpu_s" to $WORK/NAME.times. Its stdout+stderr go to $WORK/NAME.log.
timed() {
    local name=$1 out=$WORK/$1 log=$WORK/$1.log tfile=$WORK/$1.time t0 t1 rc=0 cpu=nan why
    local -a CMD
    rm -rf "$out" "$tfile"
    mkdir -p "$out"
    "cmd_$name" "$out"
    if ((${#TIME_CMD[@]})); then CMD=("${TIME_CMD[@]}" "$tfile" "${CMD[@]}"); fi
    t0=$(date +%s.%N)
    "${CMD[@]}" >"$log" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    if ((rc != 0)); then
        echo "FAIL: $name exited with status $rc; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
    if [[ $name == crate ]]; then why=$(verify_hls "$out" 1080p/index.m3u8) || rc=$?
    else why=$(verify_hls "$out" v0/index.m3u8) || rc=$?; fi
    if ((rc != 0)); then
        echo "FAIL: $name output did not verify: $why" >&2
        return 1
    fi
    # GNU time prints "Command exited with non-zero status" first on failure; take the last line.
    if [[ -s $tfile ]]; then cpu=$(tail -n 1 "$tfile" | awk '{ printf "%.2f", $1 + $2 }'); fi
    awk -v a="$t0" -v b="$t1" -v c="$cpu" 'BEGIN { printf "%.3f %s\n", b - a, c }' \
        >>"$WORK/$name.times"
    printf '  run %d %-5s %6.2f s wall, cpu %s s\n' "$2" "$name" \
        "$(tail -n 1 "$WORK/$name.times" | cut -d' ' -f1)" "$cpu" >&2
}

rm -f "$WORK/crate.times" "$WORK/cli.times"
# Other load skews the result (2 busy cores halve the speed): record it for the report.
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)
for ((i = 1; i <= RUNS; i++)); do
    timed crate "$i" || die "crate run $i failed (log: $WORK/crate.log)"
    timed cli "$i" || die "CLI run $i failed (log: $WORK/cli.log)"
done

# --- 5. Report -----------------------------------------------------------------------------
# median: one number a line on stdin -> their median (the mean of the middle two if even).
median() {
    sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# stats FILE -> "min_wall median_wall median_cpu" (median_cpu is n/a without GNU time)
stats() {
    local min med cpu=n/a
    min=$(cut -d' ' -f1 "$1" | sort -g | head -n 1)
    med=$(cut -d' ' -f1 "$1" | median)
    if ! grep -q nan "$1"; then cpu=$(cut -d' ' -f2 "$1" | median); fi
    echo "$min $med $cpu"
}
read -r crate_min crate_med crate_cpu < <(stats "$WORK/crate.times")
read -r cli_min cli_med cli_cpu < <(stats "$WORK/cli.times")

echo
echo "## streamvisor \`transcode\` vs FFmpeg CLI: 10 s 1080p30 -> 4-rung HLS (veryfast)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- nproc: $(nproc)"
echo "- $(ffmpeg -version | head -n 1)"
echo "- runs per tool: $RUNS (alternating)"
echo "- load average (1/5/15 min) before / after the runs: $load_before / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
echo
echo "| tool | min wall (s) | median wall (s) | speed (x realtime) | median CPU user+sys (s) | wall vs CLI |"
echo "|---|---:|---:|---:|---:|---:|"
row() { # NAME MIN MED CPU
    awk -v n="$1" -v mn="$2" -v md="$3" -v c="$4" -v d="$DURATION" -v ref="$cli_med" 'BEGIN {
        if (c != "n/a") c = sprintf("%.2f", c)
        printf "| %s | %.2f | %.2f | %.2fx | %s | %.2f |\n", n, mn, md, d / md, c, md / ref }'
}
row "crate (transcode example)" "$crate_min" "$crate_med" "$crate_cpu"
row "ffmpeg CLI" "$cli_min" "$cli_med" "$cli_cpu"
echo
awk -v a="$crate_med" -v b="$cli_med" 'BEGIN {
    pct = (a / b - 1) * 100
    printf "crate/CLI median wall ratio: %.3f (crate %.1f%% %s than the CLI)\n", a / b,
        (pct < 0) ? -pct : pct, (pct < 0) ? "faster" : "slower" }'
