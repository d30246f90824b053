#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine of this
# kind, each piece only when it is missing or at the wrong version, so a
# second run finishes in seconds. Versions: scripts/versions.env, Cargo.lock
# (wasm-bindgen) and package-lock.json (npm tools).
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/versions.env"
cd "$ROOT"

started=$SECONDS
step() { printf '\033[1mbootstrap:\033[0m %s\n' "$*"; }

# Cargo-installed tools, each at its pinned version.
tool_present() { # binary version
  "$HOME/.cargo/bin/$1" --version 2>/dev/null | grep -q "$2"
}
cargo_tool() { # name binary version [extra cargo-install args...]
  local name=$1 bin=$2 version=$3; shift 3
  if tool_present "$bin" "$version"; then
    step "cargo: $name $version present"
  else
    step "cargo: installing $name $version (takes minutes on a cold machine)"
    local t=$SECONDS
    cargo install "$name" --version "$version" "$@"
    step "cargo: $name built in $((SECONDS - t)) s"
  fi
}
# 1. Debian packages, only if one is missing.
missing=()
for pkg in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "apt: all ${APT_PACKAGES// /, } present"
fi

# 2. Garage (the local S3 server) takes the longest to build, about 14 min on
#    2 cores: it builds in the background (after apt, which brings the C
#    toolchain pieces its bundled libraries need) while npm and pip, mostly
#    waiting on the network, and the smaller cargo tools run.
#    Only the features the local platform uses (SQLite metadata, bundled
#    libraries): no LMDB, metrics or K2V, which cut the build (see
#    docs/operating.md#the-two-commands-in-detail).
garage_log="$DEV_DIR/logs/bootstrap-garage.log"
garage_pid=""
if tool_present garage "$GARAGE_VERSION"; then
  step "cargo: garage $GARAGE_VERSION present"
else
  step "cargo: building garage $GARAGE_VERSION in the background (log: $garage_log)"
  cargo_tool garage garage "$GARAGE_VERSION" --locked --no-default-features --features bundled-libs,sqlite >"$garage_log" 2>&1 &
  garage_pid=$!
fi

trap '[ -z "$garage_pid" ] || kill "$garage_pid" 2>/dev/null || true' EXIT

# 3. The wasm32 target, and rustfmt and clippy for the test command's lint part.
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup: wasm32-unknown-unknown present"
else
  step "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  rustup component list --installed | grep -q "^$component" || { step "rustup: adding $component"; rustup component add "$component"; }
done

# 4. npm tools from the lockfile (wrangler, workerd, Miniflare, Node 22, binaryen...).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f node_modules/.bootstrap-lock ] && [ "$(cat node_modules/.bootstrap-lock)" = "$lock_sum" ]; then
  step "npm: node_modules matches package-lock.json"
else
  step "npm: installing from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.bootstrap-lock
fi

# 5. The project virtualenv (.venv, git-ignored) with the Python tools of the
#    reliability checks (schemathesis), from reliability/requirements.txt. The
#    stamp records what was installed; a missing or broken venv, or a changed
#    requirements file or interpreter, installs again.
req_sum="$(sha256sum reliability/requirements.txt | cut -d' ' -f1) $(python3 -c 'import sys; print(sys.version.split()[0])')"
if [ -f .venv/.bootstrap-requirements ] && [ "$(cat .venv/.bootstrap-requirements)" = "$req_sum" ] \
  && [ -x .venv/bin/schemathesis ] && .venv/bin/python -c '' 2>/dev/null; then
  step "python: .venv matches reliability/requirements.txt ($(grep -m1 '^schemathesis==' reliability/requirements.txt))"
else
  step "python: installing reliability/requirements.txt into .venv ($(python3 --version))"
  rm -rf .venv
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --no-input -r reliability/requirements.txt
  echo "$req_sum" > .venv/.bootstrap-requirements
fi

bindgen_version=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
[ -n "$bindgen_version" ] || { echo "bootstrap: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
# 6. The Workers' build tools.
cargo_tool worker-build worker-build "$WORKER_BUILD_VERSION" --locked
cargo_tool wasm-bindgen-cli wasm-bindgen "$bindgen_version"   # --locked fails for this crate


# 7. Garage, built in the background since step 2.
if [ -n "$garage_pid" ]; then
  step "cargo: waiting for garage to finish building"
  if ! wait "$garage_pid"; then
    echo "bootstrap: building garage failed; the end of $garage_log:" >&2
    tail -30 "$garage_log" >&2
    exit 1
  fi
  tail -1 "$garage_log"
fi

step "done in $((SECONDS - started)) s"
