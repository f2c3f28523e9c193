#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing if it is already there.
# Called by scripts/test.sh, so the README's test command works on a fresh machine by itself.
set -euo pipefail

need_apt=()
[ -f /usr/include/enet/enet.h ] || need_apt+=(libenet-dev)   # C ENet: the wire-compatibility peer
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# The browser end-to-end suite drives Debian's Chromium through playwright-core (no download).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# An independent WebRTC receiver (tests/aiortc), run in a network namespace of its own.
/usr/bin/python3 -c 'import aiortc' >/dev/null 2>&1 || need_apt+=(python3-aiortc)
# ip and tc: the namespaces of tests/aiortc and the shaped link of web-server/tests/adapt.rs.
{ command -v ip && command -v tc; } >/dev/null 2>&1 || need_apt+=(iproute2)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
# The shared state of several gateways (tests/cluster.rs starts its own on loopback).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The web client's toolchain (Vite 8 needs Node.js 20.19+).
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a < 20 || (a === 20 && b < 19)) { console.error("Node.js " + process.versions.node + " is too old for the web client (needs 20.19+)"); process.exit(1) }'
(cd "$(dirname "$0")/../web-client" && npm ci --no-audit --no-fund --loglevel=error)

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

# cargo-fuzz drives libFuzzer; the fuzz smoke run needs it.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
