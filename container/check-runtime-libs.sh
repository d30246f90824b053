#!/usr/bin/env bash
# Proves, without a Docker engine, that the runtime stage of container/Dockerfile
# provides every shared library the transcoder binary links: each library ldd
# resolves must belong (dpkg -S) to a package the runtime stage installs, to
# one of their dependencies (apt-cache depends --recurse), or to the packages
# every Debian image has (Priority: required). Also checks the build and
# runtime stages use the same Debian release, and that every runtime package
# exists in this machine's apt sources (bookworm, like the image).
# Usage: container/check-runtime-libs.sh [path/to/transcoder]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:-$here/../target/debug/transcoder}"
dockerfile="${DOCKERFILE:-$here/Dockerfile}"
[ -x "$bin" ] || { echo "check-runtime-libs: $bin not found; build the transcoder first" >&2; exit 1; }

build_base=$(awk '/^FROM .* AS build/{print $2}' "$dockerfile")
runtime_base=$(awk '/^FROM .* AS runtime/{print $2}' "$dockerfile")
case "$build_base" in *bookworm*) ;; *) echo "FAIL: build stage $build_base is not bookworm" >&2; exit 1;; esac
case "$runtime_base" in *bookworm*) ;; *) echo "FAIL: runtime stage $runtime_base is not bookworm" >&2; exit 1;; esac
. /etc/os-release
[ "$VERSION_CODENAME" = bookworm ] || { echo "FAIL: this machine is $VERSION_CODENAME; the check must run on bookworm" >&2; exit 1; }

# Packages named by apt-get install in the runtime stage.
runtime_pkgs=$(awk '/AS runtime/{r=1} r' "$dockerfile" \
  | sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' \
  | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|rf|useradd|\&\&)$' | sort -u)
echo "runtime stage installs: $(echo $runtime_pkgs)"
for p in $runtime_pkgs; do
  apt-cache show "$p" >/dev/null 2>&1 || { echo "FAIL: package $p does not exist in bookworm" >&2; exit 1; }
done

# Everything those pull in, plus what every Debian image has.
provided=$( { apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances $runtime_pkgs 2>/dev/null \
               | grep -vE '^\s' | grep -v '^<' ;
             dpkg-query -W -f='${Package} ${Priority} ${Essential}\n' | awk '$2=="required" || $3=="yes" {print $1}'; } | sed 's/:.*//' | sort -u)

# One dpkg query for every library (usr-merged systems list /usr/lib; ldd may say /lib).
declare -A owner_of
while read -r lib path; do
  [ -n "$path" ] || continue
  real=$(readlink -f "$path")
  libs+=("$lib")
  paths+=("$real")
done < <(ldd "$bin" | awk '/=>/ {print $1, $3} /^\s*\/lib/ {print $1, $1}')
candidates=()
for real in "${paths[@]}"; do candidates+=("$real" "/usr${real#/usr}" "${real#/usr}"); done
while IFS= read -r line; do
  pkg=${line%%: *}; file=${line#*: }
  owner_of["$(readlink -f "$file")"]=${pkg%%:*}
done < <(dpkg -S "${candidates[@]}" 2>/dev/null || true)

missing=0
for i in "${!libs[@]}"; do
  owner=${owner_of[${paths[$i]}]:-}
  if [ -z "$owner" ]; then
    echo "FAIL: ${libs[$i]} (${paths[$i]}) belongs to no Debian package" >&2; missing=1; continue
  fi
  if ! grep -qx "$owner" <<< "$provided"; then
    echo "FAIL: ${libs[$i]} comes from $owner, which the runtime stage does not install" >&2; missing=1
  fi
done
checked=${#libs[@]}
[ "$missing" = 0 ] || exit 1
echo "check-runtime-libs: all $checked shared libraries of $(basename "$bin") come from packages the runtime stage installs"
