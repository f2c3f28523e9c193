#!/usr/bin/env bash
# Runs every fuzz target of gamestream briefly (FUZZ_SECONDS each, default 15) to prove that no parser
# of peer bytes panics on what libFuzzer finds in that time. Longer runs: `cargo fuzz run <target>`.
set -euo pipefail
cd "$(dirname "$0")/../gamestream"
secs="${FUZZ_SECONDS:-15}"
# cargo-fuzz passes nightly-only sanitizer flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O
for t in $targets; do
  echo "fuzz: $t for ${secs}s"
  log="$(mktemp)"
  if ! cargo fuzz run -O "$t" -- -max_total_time="$secs" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED (crash input saved under gamestream/fuzz/artifacts/$t/)"
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || tail -n 2 "$log"
  rm -f "$log"
done
echo "fuzz: all targets survived"
