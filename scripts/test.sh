#!/usr/bin/env bash
# The one test command: everything CI runs. Installs its own prerequisites when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

# A one-shot build gains nothing from incremental caches, which were 4.5 GB of a fresh CI build.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== format"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== web client (typecheck, unit tests, build)"
(cd web-client && npm run --silent typecheck && npm test --silent && npm run --silent build)
echo "== tests"
# The gateway's tests spawn the streamer binary, so build every binary first.
cargo build --workspace --bins
# The chaos suite's streamers and host run as deployed (release). Built one package at a time, as
# the gateway bench builds its streamer, so that the bench finds it up to date.
cargo build --release -p streamer
cargo build --release --bins -p demo-host
MOONGATE_CHAOS_BIN_DIR="$PWD/target/release" cargo test --workspace
echo "== browser end-to-end (Playwright + Chromium; screenshots in target/browser-screenshots)"
(cd web-client && npm run --silent e2e)
echo "== independent WebRTC receiver (aiortc, in its own network namespace)"
bash tests/aiortc/run.sh
echo "== deploy files (validators of each ecosystem)"
bash deploy/validate.sh
echo "== fuzz smoke"
bash scripts/fuzz-smoke.sh
echo "== benchmarks (figures, not pass/fail)"
cargo bench -p gamestream --bench video_fec
cargo bench -p demo-host --bench encoder
cargo bench -p web-server --bench gateway
cargo bench -p web-server --bench cluster
