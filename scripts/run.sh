#!/usr/bin/env bash
# The run command: builds the web client (web-client/dist, served at /), the gateway (`moongate`)
# and its `streamer`, then runs the gateway. With no host configured it starts the embedded demo
# host, so this alone streams a test pattern: open the printed URL and sign in with the printed
# credential. Arguments are passed to moongate (e.g. --config web-server/moongate.example.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: install Node.js 20.19+ (or run scripts/install-test-deps.sh)" >&2
  exit 1
fi
(cd web-client && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
cargo build --release -p streamer -p web-server
export MOONGATE_WEB_ROOT="${MOONGATE_WEB_ROOT:-$PWD/web-client/dist}"
exec target/release/moongate "$@"
