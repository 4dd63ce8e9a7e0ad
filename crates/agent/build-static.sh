#!/usr/bin/env bash
# Builds banger-agent as one statically linked x86_64 executable (it runs as
# the initramfs's /init and inside images that may have no matching libc),
# checks that it really is static, and prints its path on stdout.
#
#   crates/agent/build-static.sh [TARGET_DIR]
#
# TARGET_DIR defaults to $CARGO_TARGET_DIR or the workspace's target/; the
# build goes to TARGET_DIR/agent-static so it never invalidates the normal
# (dynamic) build. The musl target is not installed on banger's machines;
# glibc with crt-static works for this binary (no NSS lookups, no dlopen).
set -euo pipefail

workspace="$(cd "$(dirname "$0")/../.." && pwd)"
target_dir="${1:-${CARGO_TARGET_DIR:-$workspace/target}}"
triple=x86_64-unknown-linux-gnu
out="$target_dir/agent-static/$triple/release/banger-agent"

cd "$workspace"
# With an explicit --target, RUSTFLAGS reach only the target's crates, not
# build scripts or proc macros (serde_derive), which stay dynamic host code.
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build -p banger-agent --release --target "$triple" \
  --target-dir "$target_dir/agent-static" >&2

if command -v file >/dev/null 2>&1; then
  description="$(file -b "$out")"
  case "$description" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *)
      echo "build-static.sh: $out is not static: $description" >&2
      exit 1
      ;;
  esac
fi
# glibc's ldd says "not a dynamic executable" for static binaries and
# "statically linked" for static-pie ones (what crt-static produces).
linkage="$(ldd "$out" 2>&1 || true)"
case "$linkage" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *)
    echo "build-static.sh: ldd lists libraries for $out:" >&2
    echo "$linkage" >&2
    exit 1
    ;;
esac

echo "$out"
