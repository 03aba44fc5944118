#!/usr/bin/env bash
# `make msrv`: checks the declared rust-version (Cargo.toml) two ways.
# 1. Every locked dependency the workspace builds with (normal and build dependencies of
#    the library and of the fleet crate)
#    declares a rust-version no newer than ours (or none).
# 2. `cargo +<msrv> check` when that toolchain is installed (none can be downloaded on the
#    project's machines: then it says so and relies on clippy's `incompatible_msrv` lint,
#    which `make lint` runs with -D warnings, for std APIs newer than the MSRV).
set -euo pipefail
cd "$(dirname "$0")/.."
msrv=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' Cargo.toml)
echo "declared MSRV: $msrv"
registry=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/ 2>/dev/null | head -1)
bad=0
while read -r name ver; do
  dir="$registry$name-${ver#v}"
  [ -f "$dir/Cargo.toml" ] || continue
  need=$(sed -n 's/^rust-version *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)
  if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$msrv" | sort -V | tail -1)" != "$msrv" ]; then
    echo "  $name $ver needs Rust $need (newer than $msrv)"
    bad=1
  fi
done < <(cargo tree --workspace -e normal,build --prefix none --no-dedupe | sed 's/ (.*//' | sort -u)
[ "$bad" = 0 ] && echo "dependencies: all within $msrv"
if rustup toolchain list 2>/dev/null | grep -q "^$msrv"; then
  cargo "+$msrv" check --lib
else
  echo "toolchain $msrv not installed: compile check skipped (clippy's incompatible_msrv covers std APIs)"
fi
exit "$bad"
