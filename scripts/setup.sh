#!/usr/bin/env bash
# Idempotent set-up: the system packages netsession and its lab need, then the pinned npm
# dependencies. Safe to run again; installs only what is missing. Needs root (apt).
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A need=(
  [ip]=iproute2 [nft]=nftables [dnsmasq]=dnsmasq-base [dbus-daemon]=dbus [ethtool]=ethtool
  [busybox]=busybox [connmanctl]=connman [curl]=curl [ping]=iputils-ping [pgrep]=procps
  [setpriv]=util-linux [unshare]=util-linux
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# connman-doc carries the API texts we implement (reference, not needed at run time)
[ -e /usr/share/doc/connman-doc ] || missing+=(connman-doc)
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # connman is installed only for its client connmanctl; policy-rc.d / no systemd keep
  # its daemon from starting, and we never start it ourselves outside a lab namespace.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm: exact versions from the lockfile; no dependency needs an install script.
# `npm install` rather than `npm ci`: the registry mirror here lacks some platform builds
# of optional dependencies (biome for darwin/win32/android), which `npm ci` treats as a
# lockfile mismatch; `npm install` skips them and still installs the locked versions.
if [ ! -d node_modules ] || ! npm ls >/dev/null 2>&1; then
  npm install --no-audit --no-fund
fi
# the daemon runs compiled (bin/netsessiond.js falls back to tsx while dist/ is missing or stale)
npm run --silent build
echo "setup: ok" >&2
