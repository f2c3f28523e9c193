#!/usr/bin/env bash
# Runs every fuzz target briefly (FUZZ_SECONDS each, default 12) to prove that no parser of peer
# bytes panics on what libFuzzer finds in that time: gamestream's Moonlight protocol parsers and
# wire's browser-message and IPC decoders (all targets live in gamestream/fuzz). Each target starts
# from its local corpus (gamestream/fuzz/corpus/<target>, not in git) plus the committed seeds
# (gamestream/fuzz/seeds/<target>). Longer runs: `cargo fuzz run <target>`, or FUZZ_RUNS=10000000
# to run each target for that many executions instead of a time (tests/README.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/../gamestream"
secs="${FUZZ_SECONDS:-12}"
limit="-max_total_time=$secs"
if [ -n "${FUZZ_RUNS:-}" ]; then limit="-runs=$FUZZ_RUNS"; fi
# cargo-fuzz passes nightly-only sanitizer flags; this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
targets=$(cargo fuzz list)
cargo fuzz build -O
for t in $targets; do
  echo "fuzz: $t ($limit)"
  mkdir -p "fuzz/corpus/$t"
  dirs=("fuzz/corpus/$t")
  if [ -d "fuzz/seeds/$t" ]; then dirs+=("fuzz/seeds/$t"); fi
  log="$(mktemp)"
  if ! cargo fuzz run -O "$t" "${dirs[@]}" -- "$limit" -max_len=4096 -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $t FAILED (crash input saved under gamestream/fuzz/artifacts/$t/)"
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" || tail -n 2 "$log"
  rm -f "$log"
done
echo "fuzz: all targets survived"
