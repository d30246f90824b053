#!/usr/bin/env bash
# Checks that `rust-version` in Cargo.toml is true: installs that toolchain
# (minimal profile, with the wasm32 target) and type-checks the workspace
# with it, native and wasm32, against the committed Cargo.lock. Not part of
# the test command (a toolchain download and a full check: about 5 minutes on
# 2 cores); run it when adding or upgrading dependencies.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "check-msrv: no rust-version in Cargo.toml" >&2; exit 1; }
echo "check-msrv: rust-version is $msrv"
rustup toolchain install "$msrv" --profile minimal --target wasm32-unknown-unknown >/dev/null
export CARGO_TARGET_DIR="$ROOT/target/msrv"
cargo "+$msrv" check --locked --workspace --all-targets
cargo "+$msrv" check --locked -p image-service -p video-service --target wasm32-unknown-unknown
# The newest rust-version any locked dependency declares: ours may not be older.
cargo metadata --format-version 1 --locked | python3 -c '
import json, sys
msrv = tuple(int(x) for x in sys.argv[1].split("."))
pkgs = json.load(sys.stdin)["packages"]
need = max((tuple(int(x) for x in p["rust_version"].split(".")), p["name"]) for p in pkgs if p.get("rust_version") and p.get("source"))
print("check-msrv: the newest rust-version among dependencies is %s (%s)" % (".".join(map(str, need[0])), need[1]))
sys.exit(1 if need[0] > msrv + (0,) * (3 - len(msrv)) else 0)
' "$msrv"
echo "check-msrv: Rust $msrv builds the workspace (native and wasm32)"
