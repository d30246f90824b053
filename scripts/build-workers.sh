#!/usr/bin/env bash
# Builds both Workers to wasm with worker-build (release), as wrangler would.
# Usage: scripts/build-workers.sh [image-service|video-service ...]
set -euo pipefail
source "$(dirname "$0")/env.sh"
crates=("$@")
[ ${#crates[@]} -gt 0 ] || crates=(image-service video-service)
for crate in "${crates[@]}"; do
  started=$SECONDS
  (cd "$ROOT/crates/$crate" && worker-build --release >"$DEV_DIR/logs/build-$crate.log" 2>&1) || {
    echo "build-workers: $crate failed; the end of $DEV_DIR/logs/build-$crate.log:" >&2
    tail -40 "$DEV_DIR/logs/build-$crate.log" >&2
    exit 1
  }
  printf 'build-workers: %s built in %d s (%s bytes of wasm)\n' "$crate" $((SECONDS - started)) "$(stat -c %s "$ROOT/crates/$crate/build/index_bg.wasm")"
done
