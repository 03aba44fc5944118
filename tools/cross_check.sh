#!/usr/bin/env bash
# `cargo check` of the library for other Linux targets, to prove that the FFmpeg log
# callback's `va_list` parameter matches the bindings there (an array type that decays to a
# pointer on x86_64 and s390x; a struct passed by value on aarch64; a plain pointer on
# riscv64). Nothing is linked or run: the bindings are generated for each target from this
# machine's FFmpeg headers (arch-independent) and the target's C library headers.
#
# Needs, per target: `rustup target add <target>` and Debian's `libc6-dev-<arch>-cross`
# (arm64, s390x, riscv64). A target missing either is reported and skipped.
# usage: tools/cross_check.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu s390x-unknown-linux-gnu riscv64gc-unknown-linux-gnu)
# FFmpeg's headers, found as pkg-config finds them for the host, under one prefix.
inc=$(pkg-config --variable=includedir libavutil)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
mkdir -p "$prefix/include" "$prefix/lib"
for d in "$inc"/libav* "$inc"/libsw*; do ln -s "$d" "$prefix/include/"; done
export FFMPEG_DIR=$prefix
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cross}
failed=0
for t in "${targets[@]}"; do
  case $t in
    aarch64-*) gnu=aarch64-linux-gnu pkg=libc6-dev-arm64-cross ;;
    s390x-*) gnu=s390x-linux-gnu pkg=libc6-dev-s390x-cross ;;
    riscv64*) gnu=riscv64-linux-gnu pkg=libc6-dev-riscv64-cross ;;
    *) echo "cross_check: $t: unknown target"; failed=1; continue ;;
  esac
  if ! rustup target list --installed | grep -qx "$t"; then
    echo "cross_check: $t: skipped: not installed (rustup target add $t)"; continue
  fi
  if [ ! -d "/usr/$gnu/include" ]; then
    echo "cross_check: $t: skipped: no /usr/$gnu/include (apt-get install $pkg)"; continue
  fi
  # bindgen runs clang for the target; the cross C library is where it finds <stdint.h>.
  var="BINDGEN_EXTRA_CLANG_ARGS_${t//-/_}"
  if env "$var=-isystem /usr/$gnu/include" cargo check --lib --target "$t"; then
    echo "cross_check: $t: ok"
  else
    echo "cross_check: $t: FAILED"; failed=1
  fi
done
exit $failed
