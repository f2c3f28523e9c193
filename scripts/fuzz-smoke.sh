#!/usr/bin/env bash
# Runs every fuzz target of gamestream briefly (FUZZ_SECONDS each, default 15) to prove that no parser
# of peer bytes panics on what libFuzzer finds in that time. Longer runs: `cargo fuzz run <target>`.
set -euo pipefail
cd "$(dirname "$0")/../gamestream"
secs="${FUZZ_SECONDS:-15}"
# cargo-fuzz passes nightly-only sanitizer flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O $targets >/dev/null
for t in $targets; do
  echo "fuzz: $t for ${secs}s"
  cargo fuzz run -O "$t" -- -max_total_time="$secs" -print_final_stats=0 2>&1 | grep -E '^(#[0-9]+ *DONE|==[0-9]+==|thread .* panicked|SUMMARY)' || true
  # cargo fuzz exits non-zero on a crash; reaching here means the target survived.
done
echo "fuzz: all targets survived"
