#!/usr/bin/env bash
# The README's second command: runs every test, and exits non-zero when any
# fails. Installs what is missing first (scripts/bootstrap.sh).
#
#   0. format and lint: cargo fmt --check; clippy on native and on wasm32, warnings denied; no module import cycles in any crate;
#      the TypeScript client (clients/typescript) generated from the current OpenAPI documents, and type-checked
#   1. native tests (cargo): the core's rules, worker-kit and the handlers against an in-memory store, the transcoder with real libav
#   2. the container: every shared library of the transcoder comes from the image's packages
#   3. both Workers built with worker-build and run in workerd (Miniflare), against Garage
#   4. the transcoder binary against the video service in workerd and Garage
#   5. end to end: the whole platform (wrangler dev, Garage, transcoder, demo) and a headless browser
#   6. reliability and security, quick part: bad media, crashes and faults, hostile requests, load
#
# `bash scripts/test.sh lint workers` runs only the named parts (lint, cargo,
# container, workers, integration, e2e, reliability). Later parts use what
# earlier ones build: cargo builds the debug transcoder, workers the Workers.
set -uo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
parts=(lint cargo container workers integration e2e reliability)
for p in "$@"; do
  [[ " ${parts[*]} " == *" $p "* ]] || { echo "test.sh: no part named '$p'; the parts are: ${parts[*]}" >&2; exit 2; }
done
bash scripts/bootstrap.sh || exit 1

# A clean clone's run writes about 3 GB (target/ 2.5 GB on 2026-11-30,
# plus Garage's data and the Workers' builds). With less free, linking fails
# with "No space left on device" deep in some part's log: say so first.
free_kb=$(df -Pk "$ROOT" | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((4 * 1024 * 1024)) ]; then
  printf '\033[1mtest.sh: warning:\033[0m only %s MB free on the disk of %s; a clean run needs about 4 GB\n' $((free_kb / 1024)) "$ROOT" >&2
fi

want() { [ $# -gt 0 ] && { [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }; }
selected=("$@")
started=$SECONDS
summary=()
failed=0
section() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
record() { # name status seconds summary-lines
  local name=$1 status=$2 secs=$3 lines=$4
  if [ "$status" -eq 0 ]; then summary+=("PASS  $name (${secs}s)"); else summary+=("FAIL  $name (${secs}s)"); failed=1; fi
  while IFS= read -r l; do [ -n "$l" ] && summary+=("        $l"); done <<< "$lines"
}

if want lint; then
  section "format and lint (cargo fmt --check, clippy native and wasm32 with warnings denied, no import cycles)"
  t=$SECONDS
  {
    # Module import cycles (scripts/check-import-cycles.mjs, tested first) and the typed client's drift and type
    # check (clients/typescript/test); reported, then the rest runs too.
    cycles=0
    { node --test --test-reporter=dot scripts/check-import-cycles.test.mjs devkit/ports.test.mjs clients/typescript/test/*.test.mjs && node scripts/check-import-cycles.mjs; } || cycles=1
    cargo fmt --all --check &&
      cargo clippy --workspace --all-targets -- -D warnings &&
      cargo clippy -p image-service -p video-service --target wasm32-unknown-unknown -- -D warnings &&
      [ "$cycles" -eq 0 ]
  } 2>&1 | tee "$DEV_DIR/logs/test-lint.log"
  status=${PIPESTATUS[0]}
  record "format and lint" "$status" $((SECONDS - t)) "$(grep -E '^(error|warning)' "$DEV_DIR/logs/test-lint.log" | sort | uniq -c | head -5)"
fi

if want cargo; then
  section "native tests (cargo test)"
  t=$SECONDS
  cargo test --workspace 2>&1 | tee "$DEV_DIR/logs/test-cargo.log"
  status=${PIPESTATUS[0]}
  record "cargo test" "$status" $((SECONDS - t)) "$(grep -E '^test result:' "$DEV_DIR/logs/test-cargo.log" | grep -v ' 0 passed; 0 failed')"
fi

if want container; then
  section "container runtime libraries (container/check-runtime-libs.sh)"
  t=$SECONDS
  {
    bash container/check-runtime-libs.sh target/debug/transcoder && {
      # The check must be able to fail: a runtime stage without libavfilter8 is refused.
      sed 's/libavfilter8 //' container/Dockerfile > "$DEV_DIR/Dockerfile.without-libavfilter"
      if DOCKERFILE="$DEV_DIR/Dockerfile.without-libavfilter" bash container/check-runtime-libs.sh target/debug/transcoder >/dev/null 2>&1; then
        echo "check-runtime-libs accepted a Dockerfile without libavfilter8"; false
      else
        echo "check-runtime-libs refuses a runtime stage without libavfilter8, as it should"
      fi
    }
  } 2>&1 | tee "$DEV_DIR/logs/test-container.log"
  status=${PIPESTATUS[0]}
  record "container libraries" "$status" $((SECONDS - t)) "$(grep -E '^check-runtime-libs:' "$DEV_DIR/logs/test-container.log")"
fi

if want workers; then
  section "Workers in workerd (node --test tests/workers/*.test.mjs)"
  t=$SECONDS
  if bash scripts/build-workers.sh; then
    node --test --test-concurrency=2 tests/workers/*.test.mjs 2>&1 | tee "$DEV_DIR/logs/test-workers.log"
    status=${PIPESTATUS[0]}
  else
    status=1
    echo "building the Workers failed" > "$DEV_DIR/logs/test-workers.log"
  fi
  record "workers (workerd)" "$status" $((SECONDS - t)) "$(grep -E '^# (tests|pass|fail) ' "$DEV_DIR/logs/test-workers.log" | tr '\n' ' ')"
fi

if want integration; then
  section "transcoder against workerd and Garage (node --test tests/integration/*.test.mjs)"
  t=$SECONDS
  node --test --test-concurrency=1 tests/integration/*.test.mjs 2>&1 | tee "$DEV_DIR/logs/test-integration.log"
  status=${PIPESTATUS[0]}
  record "transcoder integration" "$status" $((SECONDS - t)) "$(grep -E '^# (tests|pass|fail) ' "$DEV_DIR/logs/test-integration.log" | tr '\n' ' ')"
fi

if want e2e; then
  section "end to end (node --test tests/e2e/*.test.mjs)"
  t=$SECONDS
  node --test --test-concurrency=1 tests/e2e/*.test.mjs 2>&1 | tee "$DEV_DIR/logs/test-e2e.log"
  status=${PIPESTATUS[0]}
  record "end to end" "$status" $((SECONDS - t)) "$(grep -E '^# (tests|pass|fail) ' "$DEV_DIR/logs/test-e2e.log" | tr '\n' ' '; ls tests/artifacts/*.png 2>/dev/null | sed 's/^/artifact: /')"
fi

if want reliability; then
  section "reliability and security, quick part (node reliability/run.mjs)"
  t=$SECONDS
  node reliability/run.mjs 2>&1 | tee "$DEV_DIR/logs/test-reliability.log"
  status=${PIPESTATUS[0]}
  record "reliability (quick)" "$status" $((SECONDS - t)) "$(grep -E '^reliability: [0-9]+ of [0-9]+ checks pass' "$DEV_DIR/logs/test-reliability.log"; grep -E '^\| .* \| FAIL ' "$DEV_DIR/logs/test-reliability.log" | cut -c1-160)"
fi

section "summary"
printf '%s\n' "${summary[@]}"
printf 'total %d s\n' $((SECONDS - started))
exit $failed
