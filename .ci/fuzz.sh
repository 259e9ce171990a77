#!/usr/bin/env bash
# A short run of every fuzz target (tests/fuzz, cargo-fuzz), seeded from its corpus, when a
# nightly toolchain is there; CI's stable-only machine prints a skip line and passes. The
# corpora themselves are replayed on stable by `cargo test` (tests/fuzz_corpora.rs).
# FUZZ_SECONDS sets the time per target (default 15: six targets, well under 3 minutes
# with the build). FUZZ_SEED sets libFuzzer's seed (default 1, so a run explores the same
# inputs each time and CI does not turn red by the luck of a draw on code it did not
# change; 0 draws one). Exploring is for longer runs by hand (BENCHMARKS.md, fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "== fuzz: SKIPPED (no nightly toolchain; the corpora still run under cargo test)"
  exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

seconds="${FUZZ_SECONDS:-15}"
seed="${FUZZ_SEED:-1}"
targets=(filter path patch normalize member_csv admin_form)
# No sanitizer: the crate forbids unsafe code, and without one each target runs many times
# faster. Debug assertions stay on.
cargo +nightly fuzz build --fuzz-dir tests/fuzz --sanitizer none
for t in "${targets[@]}"; do
  echo "== fuzz: $t for ${seconds}s"
  # A scratch corpus first, so a short run adds no files to the repository; the committed
  # corpus is read as a seed.
  scratch="$(mktemp -d)"
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run --fuzz-dir tests/fuzz --sanitizer none "$t" "$scratch" tests/fuzz/corpus/"$t" -- \
    -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^stat::number_of_executed_units' "$log" || true
  rm -rf "$scratch"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    rm -f "$log"
    echo "== fuzz: $t FAILED; the input is in tests/fuzz/artifacts/$t/"
    exit 1
  fi
  rm -f "$log"
done
