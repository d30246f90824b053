#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and runs the
# whole platform on 127.0.0.1 until Ctrl-C. State lives in .dev/ and is
# reused by the next start.
set -euo pipefail
source "$(dirname "$0")/env.sh"
bash "$ROOT/scripts/bootstrap.sh"
echo "up: building the transcoder (release; the first build takes a few minutes)…"
(cd "$ROOT" && cargo build --release -p transcoder --quiet)
exec node "$ROOT/devkit/platform.mjs"
