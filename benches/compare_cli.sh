#!/usr/bin/env bash
# Side by side: the crate's `transcode` example vs. the FFmpeg CLI doing the same work in
# one process. Two sections, each printing its own table; SECTIONS picks them.
#
# Section "file" (speed): wall-clock time (and CPU user+sys, when /usr/bin/time is present)
# to turn one 10 s 1080p30 H.264/AAC MP4 into a 4-rung HLS VOD ladder (1080p 5000k, 720p
# 2800k, 480p 1400k, 360p 800k; x264 veryfast, 2 s segments, AAC 128k stereo per rung).
# Both tools decode the same file once, scale it four ways and encode all rungs in one
# process. Runs alternate crate, CLI, crate, CLI, ... so drift in machine load hits both.
# Every run's output is checked (master.m3u8, every variant playlist finished with
# #EXT-X-ENDLIST, 300 frames in the top rung) before its time counts.
#
# Section "live" (latency): each tool run gets a fresh `ffmpeg -re` publisher serving
# real-time 720p30 H.264/AAC MPEG-TS on a one-shot tcp://127.0.0.1:PORT listener (its clock
# starts when the tool connects); the tool makes a 2-rung live HLS ladder from it (720p
# 2800k, 360p 800k; x264 veryfast, 2 s segments, every segment kept listed). Polling every
# 20 ms, it measures
#   first segment  process start -> the 720p media playlist (crate: 720p/index.m3u8, CLI:
#                  v1/index.m3u8) lists a segment. This includes connecting to and probing
#                  the source; note that the FFmpeg CLI opens MPEG-TS with scan_all_pmts=1,
#                  which reads about 5 s of a live source before it starts (the crate uses
#                  the libavformat default, 0; LIVE_CLI_IN_OPTS="-scan_all_pmts 0" evens it).
#   stop->ENDLIST  SIGINT -> every variant playlist of the tool has #EXT-X-ENDLIST.
#   stop->exit     SIGINT -> the process has exited (crate: status 0; CLI: 0 or 255, the
#                  status FFmpeg returns after "Exiting normally, received signal 2").
# SIGINT goes LIVE_STOP_AFTER s after the tool's start, but never before its first segment
# is listed. Runs alternate crate, CLI, ...; a run counts only when its master playlist
# lists both variants, each finished and listing a segment.
#
# Run:   bash benches/compare_cli.sh        (or: make compare)
# Env:   SECTIONS="file live codecs"  the sections to run, in this order
#        CODEC_RUNS=2      timed runs per tool and codec (codecs section)
#        RUNS=3            timed runs per tool (file section)
#        SYNC_COST=1       also time the crate without fsyncs (--no-sync-output), file section
#        MANY_N="3 6"      stream counts for the many section (SECTIONS=many; not run by
#                          default: it takes a few minutes)
#        LIVE_RUNS=2       runs per tool (live section)
#        LIVE_STOP_AFTER=6 seconds from a tool's start to its SIGINT (live section)
#        LIVE_PORT=39170   first TCP port on 127.0.0.1 for the publishers; each live run
#                          takes the next one
#        LIVE_CLI_IN_OPTS= extra input options for the CLI in the live section (word-split)
#        WORK=out/compare  work dir: the input (made once, reused; delete it to remake),
#                          the outputs and the logs of the last run of each tool
#        CARGO=cargo       cargo binary
# Needs: ffmpeg and ffprobe on PATH (FFmpeg 5.1 with libx264), cargo; Linux (/proc) for
#        the live section.
# Exit:  0 when every run of both tools succeeded and verified; 1 at the first failure.

set -euo pipefail

SECTIONS=${SECTIONS:-file live codecs}
RUNS=${RUNS:-3}
LIVE_RUNS=${LIVE_RUNS:-2}
LIVE_STOP_AFTER=${LIVE_STOP_AFTER:-6}
LIVE_PORT=${LIVE_PORT:-39170}
LIVE_CLI_IN_OPTS=${LIVE_CLI_IN_OPTS:-}
WORK=${WORK:-out/compare}
CARGO=${CARGO:-cargo}
DURATION=10   # seconds of media in the input
FRAMES=300    # DURATION * 30 fps

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "compare_cli: $*" >&2; exit 1; }

read -r -a SECTION_LIST <<<"$SECTIONS"
((${#SECTION_LIST[@]})) || die "SECTIONS is empty; use file, live or both"
for s in "${SECTION_LIST[@]}"; do
    [[ $s == file || $s == live || $s == many ]] \
        || [[ $s == codecs ]] \
        || die "SECTIONS: unknown section '$s' (use file, live, many, codecs)"
done
want() { [[ " ${SECTION_LIST[*]} " == *" $1 "* ]]; }

if want file; then
    [[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
fi
if want live; then
    [[ $LIVE_RUNS =~ ^[1-9][0-9]*$ ]] || die "LIVE_RUNS must be a positive integer, got '$LIVE_RUNS'"
    [[ $LIVE_STOP_AFTER =~ ^[0-9]+(\.[0-9]+)?$ ]] \
        || die "LIVE_STOP_AFTER must be a number of seconds, got '$LIVE_STOP_AFTER'"
    [[ $LIVE_PORT =~ ^[1-9][0-9]*$ ]] && ((LIVE_PORT + 2 * LIVE_RUNS <= 65535)) \
        || die "LIVE_PORT must be a TCP port with room for $((2 * LIVE_RUNS)) runs, got '$LIVE_PORT'"
    [[ -r /proc/net/tcp ]] || die "the live section needs /proc/net/tcp (Linux)"
fi
TOOLS=(ffmpeg "$CARGO")
if want file || want many || want codecs; then TOOLS+=(ffprobe); fi
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || die "$tool not found on PATH"
done
# CPU user+sys comes from GNU time when it is there; without it the CPU column says n/a.
TIME_CMD=()
if [[ -x /usr/bin/time ]]; then TIME_CMD=(/usr/bin/time -f "%U %S" -o); fi

mkdir -p "$WORK"
INPUT=$WORK/input.mp4
EXAMPLE=${CARGO_TARGET_DIR:-target}/release/examples/transcode

# build_example: builds the example once per script run (not timed).
BUILT=0
build_example() {
    ((BUILT)) && return 0
    echo "building the transcode example ..." >&2
    "$CARGO" build --release --quiet --example transcode
    [[ -x $EXAMPLE ]] || die "$EXAMPLE missing after the build"
    BUILT=1
}

# median: one number a line on stdin -> their median (the mean of the middle two if even).
median() {
    sort -g | awk '{ v[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ===================================== Section: file =====================================

# --- The two commands ----------------------------------------------------------------------
# cmd_NAME OUT: sets CMD to the command line of tool NAME writing to OUT.
cmd_crate() {
    CMD=("$EXAMPLE" "$INPUT" --out "$1" --ladder 1080p,720p,480p,360p --preset veryfast --segment 2)
}

# The same, without the fsyncs of FsSink (what durability costs: SYNC_COST=1).
cmd_crate-nosync() {
    cmd_crate "$1"
    CMD+=(--no-sync-output)
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

# --- Output checks -------------------------------------------------------------------------
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

# --- Timed runs ----------------------------------------------------------------------------
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
    if [[ $name == crate* ]]; then why=$(verify_hls "$out" 1080p/index.m3u8) || rc=$?
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

# stats FILE -> "min_wall median_wall median_cpu" (median_cpu is n/a without GNU time)
stats() {
    local min med cpu=n/a
    min=$(cut -d' ' -f1 "$1" | sort -g | head -n 1)
    med=$(cut -d' ' -f1 "$1" | median)
    if ! grep -q nan "$1"; then cpu=$(cut -d' ' -f2 "$1" | median); fi
    echo "$min $med $cpu"
}

# make_input: the reference input (10 s 1080p30 H.264 + AAC), made once and reused.
make_input() {
    [[ -s $INPUT ]] && return 0
    echo "generating $INPUT ..." >&2
    ffmpeg -y -hide_banner -v error \
        -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$DURATION" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$DURATION" \
        -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k -shortest \
        "$WORK/input.tmp.mp4"
    mv "$WORK/input.tmp.mp4" "$INPUT"
}

file_section() {
    # --- 1. Reference input, made once ---------------------------------------------------
    make_input

    # --- 2. Build the example once (not timed) -------------------------------------------
    build_example

    # --- 3. Timed runs -------------------------------------------------------------------
    rm -f "$WORK/crate.times" "$WORK/cli.times" "$WORK/crate-nosync.times"
    # Other load skews the result (2 busy cores halve the speed): record it for the report.
    local load_before i crate_min crate_med crate_cpu cli_min cli_med cli_cpu
    load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)
    for ((i = 1; i <= RUNS; i++)); do
        timed crate "$i" || die "crate run $i failed (log: $WORK/crate.log)"
        timed cli "$i" || die "CLI run $i failed (log: $WORK/cli.log)"
        if [[ ${SYNC_COST:-1} == 1 ]]; then
            timed crate-nosync "$i" || die "crate-nosync run $i failed (log: $WORK/crate-nosync.log)"
        fi
    done

    # --- 4. Report -----------------------------------------------------------------------
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
    if [[ -s $WORK/crate-nosync.times ]]; then
        local ns_min ns_med ns_cpu
        read -r ns_min ns_med ns_cpu < <(stats "$WORK/crate-nosync.times")
        row "crate, --no-sync-output" "$ns_min" "$ns_med" "$ns_cpu"
    fi
    echo
    awk -v a="$crate_med" -v b="$cli_med" 'BEGIN {
        pct = (a / b - 1) * 100
        printf "crate/CLI median wall ratio: %.3f (crate %.1f%% %s than the CLI)\n", a / b,
            (pct < 0) ? -pct : pct, (pct < 0) ? "faster" : "slower" }'
}

# ===================================== Section: live =====================================

POLL=0.02          # seconds between two looks at the playlists / the process
LIVE_TIMEOUT=60    # seconds a live run may wait for its first segment, or for its stop
PUB_PID=           # the running publisher, the running tool: killed on exit if still there
TOOL_PID=

# The tools' live commands. live_cmd_NAME OUT PORT sets CMD; LIVE_VARIANTS_NAME are the
# variant playlists (OUT/V/index.m3u8) and LIVE_FIRST_NAME the one whose first segment counts.
LIVE_VARIANTS_crate=(720p 360p)
LIVE_FIRST_crate=720p
live_cmd_crate() {
    CMD=("$EXAMPLE" "tcp://127.0.0.1:$2" --out "$1" --ladder 720p,360p --preset veryfast --segment 2)
}

LIVE_VARIANTS_cli=(v0 v1)
LIVE_FIRST_cli=v1   # as specified; both rungs finish a segment on the same key frame
live_cmd_cli() {
    local -a in_opts
    read -r -a in_opts <<<"$LIVE_CLI_IN_OPTS"
    # -nostdin: a background ffmpeg must not read the terminal. No -hls_playlist_type:
    # a live playlist; -hls_list_size 0 keeps every segment listed. SIGINT makes FFmpeg
    # write its trailer, which finishes each playlist with #EXT-X-ENDLIST.
    CMD=(ffmpeg -nostdin -y -v error ${in_opts[@]+"${in_opts[@]}"} -i "tcp://127.0.0.1:$2"
        -filter_complex "[0:v]split=2[a][b];[a]scale=1280:720[v0];[b]scale=640:360[v1]"
        -map "[v0]" -map 0:a -map "[v1]" -map 0:a
        -c:v libx264 -preset veryfast -force_key_frames "expr:gte(t,n_forced*2)" -sc_threshold 0
        -b:v:0 2800k -b:v:1 800k
        -c:a aac -b:a 128k -ac 2
        -f hls -hls_time 2 -hls_list_size 0
        -var_stream_map "v:0,a:0 v:1,a:1"
        -master_pl_name master.m3u8 "$1/v%v/index.m3u8")
}

# port_listening PORT: something listens on 127.0.0.1:PORT (or 0.0.0.0:PORT). Reads
# /proc/net/tcp instead of connecting: a probe connection would use up the one-shot listener.
port_listening() {
    local hex
    printf -v hex '%04X' "$1"
    awk -v a="0100007F:$hex" -v b="00000000:$hex" \
        '($2 == a || $2 == b) && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp
}

# gone PID: the process has exited (no longer there, or a zombie not reaped yet).
gone() {
    local st
    { read -r st </proc/"$1"/stat; } 2>/dev/null || return 0
    st=${st##*) }
    [[ ${st%% *} == [ZX] ]]
}

# listed OUT NAME: the first-segment playlist of tool NAME lists a segment.
listed() {
    local -n first=LIVE_FIRST_$2
    grep -qs '\.ts$' "$1/$first/index.m3u8"
}

# finished OUT NAME: every variant playlist of tool NAME has #EXT-X-ENDLIST.
finished() {
    local -n variants=LIVE_VARIANTS_$2
    local v
    for v in "${variants[@]}"; do
        grep -qs '^#EXT-X-ENDLIST' "$1/$v/index.m3u8" || return 1
    done
}

# verify_live OUT NAME: the master lists exactly the tool's variants, each finished and
# listing at least one segment.
verify_live() {
    local out=$1 uri n=0 v
    local -n variants=LIVE_VARIANTS_$2
    [[ -s $out/master.m3u8 ]] || { echo "no $out/master.m3u8"; return 1; }
    while IFS= read -r uri; do
        uri=${uri%$'\r'}
        [[ -z $uri || $uri == \#* ]] && continue
        n=$((n + 1))
    done <"$out/master.m3u8"
    ((n == ${#variants[@]})) \
        || { echo "$out/master.m3u8 lists $n variants, expected ${#variants[@]}"; return 1; }
    for v in "${variants[@]}"; do
        grep -qx "$v/index.m3u8" "$out/master.m3u8" \
            || { echo "$out/master.m3u8 does not list $v/index.m3u8"; return 1; }
        grep -q '^#EXT-X-ENDLIST' "$out/$v/index.m3u8" \
            || { echo "$out/$v/index.m3u8 has no #EXT-X-ENDLIST"; return 1; }
        grep -q '\.ts$' "$out/$v/index.m3u8" \
            || { echo "$out/$v/index.m3u8 lists no segment"; return 1; }
    done
}

# stop_pid PID: SIGTERM, then SIGKILL after 3 s if still there; reaps it.
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do gone "$pid" && break; sleep "$POLL"; done
    gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

live_cleanup() {
    if [[ -n $TOOL_PID ]]; then stop_pid "$TOOL_PID"; TOOL_PID=; fi
    if [[ -n $PUB_PID ]]; then stop_pid "$PUB_PID"; PUB_PID=; fi
}

# live_fail NAME RUN MSG: reports a failed live run (with the logs' last lines), cleans up.
live_fail() {
    echo "FAIL: live $1 run $2: $3" >&2
    echo "  last lines of $WORK/$1-live.log:" >&2
    tail -n 20 "$WORK/$1-live.log" 2>/dev/null | tr '\r' '\n' | tail -n 20 >&2 || true
    echo "  last lines of $WORK/$1-live.publisher.log:" >&2
    tail -n 5 "$WORK/$1-live.publisher.log" >&2 2>/dev/null || true
    live_cleanup
    return 1
}

# live_run NAME RUN PORT: one live run of tool NAME against a fresh publisher on PORT;
# appends "first_s endlist_s exit_s status" to $WORK/NAME-live.times.
live_run() {
    local name=$1 run=$2 port=$3 out=$WORK/$1-live log=$WORK/$1-live.log
    local publog=$WORK/$1-live.publisher.log t0 t_first t_stop t_end= t_exit= rc=0 why delay
    local deadline a b c
    local -a CMD
    rm -rf "$out"
    mkdir -p "$out"
    port_listening "$port" && { live_fail "$name" "$run" "port $port already in use (set LIVE_PORT)"; return 1; }

    # The publisher: real-time 720p30 + tone, MPEG-TS, one connection.
    ffmpeg -nostdin -hide_banner -loglevel error -re \
        -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
        -c:v libx264 -preset ultrafast -tune zerolatency -g 30 -c:a aac \
        -f mpegts "tcp://127.0.0.1:$port?listen=1" >"$publog" 2>&1 </dev/null &
    PUB_PID=$!
    deadline=$((SECONDS + 10))
    until port_listening "$port"; do
        gone "$PUB_PID" && { live_fail "$name" "$run" "the publisher exited before listening"; return 1; }
        ((SECONDS < deadline)) || { live_fail "$name" "$run" "the publisher is not listening on $port after 10 s"; return 1; }
        sleep "$POLL"
    done

    # (a) start -> first segment listed
    "live_cmd_$name" "$out" "$port"
    t0=$(date +%s.%N)
    "${CMD[@]}" >"$log" 2>&1 </dev/null &
    TOOL_PID=$!
    deadline=$((SECONDS + LIVE_TIMEOUT))
    until listed "$out" "$name"; do
        gone "$TOOL_PID" && { live_fail "$name" "$run" "exited before its first segment was listed"; return 1; }
        ((SECONDS < deadline)) || { live_fail "$name" "$run" "no segment listed after $LIVE_TIMEOUT s"; return 1; }
        sleep "$POLL"
    done
    t_first=$(date +%s.%N)

    # (b) SIGINT at t0 + LIVE_STOP_AFTER (not before the first segment) -> ENDLIST everywhere
    # and the process gone
    delay=$(awk -v a="$t0" -v n="$(date +%s.%N)" -v s="$LIVE_STOP_AFTER" \
        'BEGIN { d = a + s - n; printf "%.3f", (d > 0) ? d : 0 }')
    sleep "$delay"
    gone "$TOOL_PID" && { live_fail "$name" "$run" "exited before the stop"; return 1; }
    t_stop=$(date +%s.%N)
    kill -INT "$TOOL_PID"
    deadline=$((SECONDS + LIVE_TIMEOUT))
    while [[ -z $t_end || -z $t_exit ]]; do
        if [[ -z $t_end ]] && finished "$out" "$name"; then t_end=$(date +%s.%N); fi
        if [[ -z $t_exit ]] && gone "$TOOL_PID"; then
            t_exit=$(date +%s.%N)
            # Nothing writes after the exit: a playlist unfinished now stays so.
            if [[ -z $t_end ]] && ! finished "$out" "$name"; then
                wait "$TOOL_PID" || rc=$?
                TOOL_PID=
                live_fail "$name" "$run" "exited (status $rc) without #EXT-X-ENDLIST in every variant playlist"
                return 1
            fi
            continue
        fi
        ((SECONDS < deadline)) \
            || { live_fail "$name" "$run" "no finished playlists and exit $LIVE_TIMEOUT s after SIGINT"; return 1; }
        sleep "$POLL"
    done
    wait "$TOOL_PID" || rc=$?
    TOOL_PID=
    stop_pid "$PUB_PID"
    PUB_PID=
    if ! { ((rc == 0)) || [[ $name == cli && $rc == 255 ]]; }; then
        live_fail "$name" "$run" "exited with status $rc after SIGINT"
        return 1
    fi
    why=$(verify_live "$out" "$name") || { live_fail "$name" "$run" "output did not verify: $why"; return 1; }

    awk -v a="$t0" -v f="$t_first" -v s="$t_stop" -v e="$t_end" -v x="$t_exit" -v rc="$rc" \
        'BEGIN { printf "%.3f %.3f %.3f %d\n", f - a, e - s, x - s, rc }' >>"$WORK/$name-live.times"
    read -r a b c _ < <(tail -n 1 "$WORK/$name-live.times")
    printf '  live run %d %-5s first segment %6.2f s, stop->ENDLIST %5.2f s, stop->exit %5.2f s (status %d)\n' \
        "$run" "$name" "$a" "$b" "$c" "$rc" >&2
}

live_section() {
    local i port=$LIVE_PORT load_before
    build_example
    trap live_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    rm -f "$WORK/crate-live.times" "$WORK/cli-live.times"
    load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)
    for ((i = 1; i <= LIVE_RUNS; i++)); do
        live_run crate "$i" "$port" || die "live crate run $i failed (log: $WORK/crate-live.log)"
        port=$((port + 1))
        live_run cli "$i" "$port" || die "live CLI run $i failed (log: $WORK/cli-live.log)"
        port=$((port + 1))
    done

    echo
    echo "## streamvisor \`transcode\` vs FFmpeg CLI: live latency, real-time 720p30 MPEG-TS over TCP -> 720p+360p live HLS (veryfast, 2 s segments)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- nproc: $(nproc)"
    echo "- $(ffmpeg -version | head -n 1)"
    echo "- runs per tool: $LIVE_RUNS (alternating); SIGINT ${LIVE_STOP_AFTER} s after the start (not before the first segment); poll every ${POLL} s"
    if [[ -n $LIVE_CLI_IN_OPTS ]]; then echo "- extra CLI input options: $LIVE_CLI_IN_OPTS"; fi
    echo "- load average (1/5/15 min) before / after the runs: $load_before / $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
    echo
    echo "| tool | median time to first segment (s) | median stop→ENDLIST (s) | median stop→exit (s) |"
    echo "|---|---:|---:|---:|"
    live_row() { # LABEL TIMES_FILE
        printf '| %s | %.2f | %.2f | %.2f |\n' "$1" \
            "$(cut -d' ' -f1 "$2" | median)" "$(cut -d' ' -f2 "$2" | median)" "$(cut -d' ' -f3 "$2" | median)"
    }
    live_row "crate (transcode example)" "$WORK/crate-live.times"
    live_row "ffmpeg CLI" "$WORK/cli-live.times"
}

# ===================================== Section: many =====================================
# N copies of the reference input (10 s 1080p30) to a 720p + 360p HLS ladder each (x264
# veryfast, 2 s segments, AAC 128k), all at once: one `manager` example process (one
# Manager, every stream admitted at once: --compute lifts the pool's limit so that both
# tools run the same work at the same time) against N FFmpeg CLI processes started
# together. Wall time to finish all N, CPU user+sys of the whole run, and the peak RSS
# (crate: its one process; CLI: the sum of the N processes' peaks). Every output is checked
# (2 finished variants, 300 frames on top) before a run counts.

many_cli_cmd() { # OUT
    CMD=(ffmpeg -y -v error -i "$INPUT"
        -filter_complex "[0:v]split=2[a][b];[a]scale=1280:720[v0];[b]scale=640:360[v1]"
        -map "[v0]" -map 0:a -map "[v1]" -map 0:a
        -c:v libx264 -preset veryfast -force_key_frames "expr:gte(t,n_forced*2)" -sc_threshold 0
        -b:v:0 2800k -b:v:1 800k -c:a aac -b:a 128k -ac 2
        -f hls -hls_time 2 -hls_playlist_type vod -var_stream_map "v:0,a:0 v:1,a:1"
        -master_pl_name master.m3u8 "$1/v%v/index.m3u8")
}

# verify_two OUT TOP: a master listing 2 finished variants, FRAMES frames on top.
verify_two() {
    local out=$1 n frames
    n=$(grep -c 'm3u8$' "$out/master.m3u8" 2>/dev/null || echo 0)
    ((n == 2)) || { echo "$out: master lists ${n:-no} variants"; return 1; }
    frames=$(ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=nb_read_frames -of csv=p=0 "$out/$2" | awk -F, 'NF { print $1; exit }')
    [[ $frames == "$FRAMES" ]] || { echo "$out/$2: ${frames:-no} frames"; return 1; }
}

# many_run TOOL N: prints "wall cpu peak_mib".
many_run() {
    local tool=$1 n=$2 out=$WORK/many-$1-$2 t0 t1 i cpu rss
    rm -rf "$out"; mkdir -p "$out"
    local -a srcs=() pids=() CMD
    for ((i = 0; i < n; i++)); do srcs+=("$INPUT"); done
    t0=$(date +%s.%N)
    if [[ $tool == crate ]]; then
        /usr/bin/time -f "%U %S %M" -o "$out/time" "${EXAMPLE%transcode}manager" \
            --max-concurrent "$n" --compute 1000000 --ladder 720p,360p --out "$out" "${srcs[@]}" \
            >"$out/log" 2>&1 || die "crate many run failed: $(tail -n 5 "$out/log")"
        t1=$(date +%s.%N)
        read -r u s rss <"$out/time"
        cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
        rss=$((rss / 1024))
        for ((i = 0; i < n; i++)); do verify_two "$out/s$i" 720p/index.m3u8 >&2 || die "crate output"; done
    else
        for ((i = 0; i < n; i++)); do
            mkdir -p "$out/c$i"; many_cli_cmd "$out/c$i"
            /usr/bin/time -f "%U %S %M" -o "$out/c$i.time" "${CMD[@]}" >"$out/c$i.log" 2>&1 &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || die "a CLI many run failed"; done
        t1=$(date +%s.%N)
        cpu=$(cat "$out"/c*.time | awk '{ c += $1 + $2 } END { printf "%.2f", c }')
        rss=$(cat "$out"/c*.time | awk '{ m += $3 } END { printf "%d", m / 1024 }')
        for ((i = 0; i < n; i++)); do verify_two "$out/c$i" v0/index.m3u8 >&2 || die "CLI output"; done
    fi
    awk -v a="$t0" -v b="$t1" -v c="$cpu" -v r="$rss" 'BEGIN { printf "%.2f %s %s\n", b - a, c, r }'
}

many_section() {
    [[ -x /usr/bin/time ]] || die "the many section needs GNU time (apt-get install time)"

    make_input
    build_example
    "$CARGO" build --release --quiet --example manager
    echo
    echo "## Many streams at once: N x (10 s 1080p30 -> 720p + 360p HLS), one Manager vs N CLI processes"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); nproc: $(nproc)"
    echo
    echo "| N | tool | wall (s) | CPU user+sys (s) | peak RSS (MiB) | throughput vs CLI |"
    echo "|---:|---|---:|---:|---:|---:|"
    local n crate cli
    for n in ${MANY_N:-3 6}; do
        crate=$(many_run crate "$n"); cli=$(many_run cli "$n")
        read -r cw cc cr <<<"$crate"; read -r lw lc lr <<<"$cli"
        printf '| %d | crate (manager example) | %.2f | %.2f | %d | %.2fx |\n' "$n" "$cw" "$cc" "$cr" \
            "$(awk -v a="$lw" -v b="$cw" 'BEGIN { print a / b }')"
        printf '| %d | ffmpeg CLI x %d | %.2f | %.2f | %d | 1.00x |\n' "$n" "$n" "$lw" "$lc" "$lr"
    done
}

# ==================================== Section: codecs ====================================
# The same 10 s 1080p30 input to a 2-rung fMP4 HLS ladder (720p 2800k, 360p 800k) in HEVC
# and in AV1, 2 s segments, AAC 128k encoded once and stored once as its own rendition in
# both tools (the CLI's var_stream_map with an audio group). HEVC: libx265 veryfast in both,
# keyframes forced every 2 s, no scene cuts; AV1: SVT-AV1 preset 10 (the crate's mapping of
# veryfast) with a 60-frame GOP in both. Every run's output is checked: master, both
# variant playlists finished, 300 frames in the 720p rung, read through its init segment.

cmd_codec_crate() { # OUT CODEC
    CMD=("$EXAMPLE" "$INPUT" --out "$1" --ladder 720p,360p --codec "$2" --preset veryfast --segment 2)
}

cmd_codec_cli() { # OUT CODEC
    local -a enc
    if [[ $2 == hevc ]]; then
        enc=(-c:v libx265 -preset veryfast -tag:v hvc1 -x265-params "scenecut=0:open-gop=0:log-level=error"
            -force_key_frames "expr:gte(t,n_forced*2)")
    else
        enc=(-c:v libsvtav1 -preset 10 -g 60)
    fi
    CMD=(ffmpeg -y -v error -i "$INPUT"
        -filter_complex "[0:v]split=2[a][b];[a]scale=1280:720[v0];[b]scale=640:360[v1]"
        -map "[v0]" -map "[v1]" -map 0:a "${enc[@]}"
        -b:v:0 2800k -maxrate:v:0 3080k -bufsize:v:0 5600k -b:v:1 800k -maxrate:v:1 880k -bufsize:v:1 1600k
        -c:a aac -b:a 128k -ac 2
        -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type fmp4
        -var_stream_map "a:0,agroup:aud v:0,agroup:aud v:1,agroup:aud"
        -master_pl_name master.m3u8 "$1/v%v/index.m3u8")
}

# verify_codec OUT TOP: master, finished playlists, FRAMES frames in TOP (an fMP4 playlist).
verify_codec() {
    local out=$1 top=$2 frames
    [[ -s $out/master.m3u8 ]] || { echo "no $out/master.m3u8"; return 1; }
    grep -q '^#EXT-X-ENDLIST' "$out/$top" || { echo "$out/$top not finished"; return 1; }
    frames=$(ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=nb_read_frames -of csv=p=0 "$out/$top" | awk -F, 'NF { print $1; exit }')
    [[ $frames == "$FRAMES" ]] || { echo "$out/$top has ${frames:-no} frames, expected $FRAMES"; return 1; }
}

# codec_run TOOL CODEC RUN: one timed, verified run; appends "wall cpu" to its times file.
codec_run() {
    local tool=$1 codec=$2 out=$WORK/$1-$2 tfile=$WORK/$1-$2.time t0 t1 cpu=nan why top
    local -a CMD
    rm -rf "$out" "$tfile"; mkdir -p "$out"
    "cmd_codec_$tool" "$out" "$codec"
    if ((${#TIME_CMD[@]})); then CMD=("${TIME_CMD[@]}" "$tfile" "${CMD[@]}"); fi
    t0=$(date +%s.%N)
    SVT_LOG=1 "${CMD[@]}" >"$WORK/$tool-$codec.log" 2>&1 \
        || { tail -n 20 "$WORK/$tool-$codec.log" >&2; return 1; }
    t1=$(date +%s.%N)
    if [[ $tool == crate ]]; then top=720p/index.m3u8; else top=v1/index.m3u8; fi
    why=$(verify_codec "$out" "$top") || { echo "FAIL: $tool $codec: $why" >&2; return 1; }
    if [[ -s $tfile ]]; then cpu=$(tail -n 1 "$tfile" | awk '{ printf "%.2f", $1 + $2 }'); fi
    awk -v a="$t0" -v b="$t1" -v c="$cpu" 'BEGIN { printf "%.3f %s\n", b - a, c }' >>"$WORK/$tool-$codec.times"
    printf '  run %d %-5s %-4s %6.2f s wall, cpu %s s\n' "$3" "$tool" "$codec" \
        "$(tail -n 1 "$WORK/$tool-$codec.times" | cut -d' ' -f1)" "$cpu" >&2
}

codecs_section() {
    make_input
    build_example
    local codec i runs=${CODEC_RUNS:-2}
    echo
    echo "## HEVC and AV1: 10 s 1080p30 -> 720p + 360p fMP4 HLS, audio once"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); nproc: $(nproc); runs per tool: $runs (alternating)"
    echo
    echo "| codec | tool | median wall (s) | speed (x realtime) | median CPU user+sys (s) | wall vs CLI |"
    echo "|---|---|---:|---:|---:|---:|"
    for codec in hevc av1; do
        rm -f "$WORK/crate-$codec.times" "$WORK/cli-$codec.times"
        for ((i = 1; i <= runs; i++)); do
            codec_run crate "$codec" "$i" || die "crate $codec run $i failed"
            codec_run cli "$codec" "$i" || die "CLI $codec run $i failed"
        done
        local cm cc lm lc
        read -r _ cm cc < <(stats "$WORK/crate-$codec.times")
        read -r _ lm lc < <(stats "$WORK/cli-$codec.times")
        awk -v c="$codec" -v cm="$cm" -v cc="$cc" -v lm="$lm" -v lc="$lc" -v d="$DURATION" 'BEGIN {
            printf "| %s | crate (transcode example) | %.2f | %.2fx | %s | %.2f |\n", c, cm, d / cm, cc, cm / lm
            printf "| %s | ffmpeg CLI | %.2f | %.2fx | %s | 1.00 |\n", c, lm, d / lm, lc }'
    done
}

# ========================================= Main ==========================================
for s in "${SECTION_LIST[@]}"; do
    "${s}_section"
done
