#!/usr/bin/env bash
# `make fuzz`: runs each cargo-fuzz target under fuzz/ (the lavfi: grammar, StreamConfig
# building) for FUZZ_SECONDS (default 60) each, with the nightly toolchain where
# `rustup toolchain list` shows one; says so and skips (exit 0) without it. Installs
# cargo-fuzz from crates.io if it is missing. A crash fails the run (exit 1); its input is
# left in fuzz/artifacts/<target>/. Not part of `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-graph config}

if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
    echo "make fuzz: skipped: no nightly toolchain installed (rustup toolchain list); cargo-fuzz needs one"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "make fuzz: installing cargo-fuzz from crates.io"
    if ! cargo install cargo-fuzz; then
        echo "make fuzz: skipped: cargo-fuzz could not be installed"
        exit 0
    fi
fi

cd fuzz
status=0
summary=()
for target in $targets; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    echo "make fuzz: $target for ${seconds}s"
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=1024 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
    corpus=$(find "corpus/$target" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        status=1
        grep -A4 "panicked" "$log" | head -20
        tail -20 "$log"
        summary+=("$target: FAILED (exit $rc) after ${execs:-?} execs; see fuzz/artifacts/$target/")
    else
        summary+=("$target: ${execs:-?} execs in ${took:-$seconds} s, 0 crashes, corpus $corpus inputs")
    fi
    rm -f "$log"
done
printf 'make fuzz: %s\n' "${summary[@]}"
exit $status
