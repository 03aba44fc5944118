#!/usr/bin/env bash
# `make asan`: the integration tests under AddressSanitizer (+ LeakSanitizer), built with the
# nightly toolchain's -Zsanitizer=address. No toolchain can be downloaded on the project's
# machines: without a nightly toolchain this says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "asan: skipped: no nightly toolchain installed (rustup toolchain list)"
  exit 0
fi
target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=address"
export RUSTDOCFLAGS="-Zsanitizer=address"
# Full (slow) unwinding so that the library-only suppressions can match their frames.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp:print_suppressions=0"
# Its own target dir: sanitizer builds must not mix with the normal ones.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/asan}
# The security tests run the example binaries: build them (instrumented) first.
cargo +nightly build --release --target "$target" --examples
cargo +nightly test --release --target "$target" --test it -- ${ASAN_TESTS:-} --test-threads 2
echo "asan: clean"
