#!/usr/bin/env bash
# The run command: builds the gateway (`moongate`) and its `streamer`, then runs the gateway. With no
# host configured it starts the embedded demo host, so this alone streams a test pattern.
# Arguments are passed to moongate (e.g. --config web-server/moongate.example.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p streamer -p web-server
exec target/release/moongate "$@"
