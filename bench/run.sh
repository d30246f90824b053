#!/usr/bin/env bash
# Runs the benchmarks (see bench/run.mjs): installs what is missing, builds
# the release transcoder, then measures. Not part of the test command.
# Run it on a quiet machine: the figures are wall times.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
bash "$ROOT/scripts/bootstrap.sh"
(cd "$ROOT" && cargo build --release -p transcoder --quiet)
exec node "$ROOT/bench/run.mjs" "$@"
