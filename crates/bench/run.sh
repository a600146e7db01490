#!/bin/sh
# The udpchat benchmark suite: builds the release binaries, then runs
# crates/bench/suite.py, which measures the loopback limit, the relay and the
# Python reference relay back to back and writes BENCHMARKS.md.
# Options go to suite.py (--reps 3, --duration 3, --clients 10,100,1000,10000,
# --skip-python, --only limit,throughput,latency,overload,hostile, --out FILE,
# --baseline OLD_RELAY_BINARY for a before/after comparison in one run).
# Linux only; loopback traffic only; takes several minutes.
set -eu
cd "$(dirname "$0")/../.."
cargo build --release --workspace --bin udpchat-relay --bin udpchat --bin udpchat-bench --bin udpchat-delivery --bin udpchat-hostile
exec python3 crates/bench/suite.py "$@"
