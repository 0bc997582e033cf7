#!/usr/bin/env bash
# The local gates, the same ones .ci/run runs: tests (the README's test
# command), every kernel tier, format, clippy, and the deterministic
# benchmark whose receipt must pass verification.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "=== $* ==="; }

step "tests (the README's test command)"
cargo test --workspace

step "kernel harness with AVX-512 and AVX2 detection disabled"
cargo test -p bitnet-core --features no_avx512 --test kernels_harness
cargo test -p bitnet-core --features no_avx2 --test kernels_harness

step "format"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "benchmark receipt"
cargo xtask benchmark --tokens 128 --deterministic
cargo xtask verify-receipt --path ci/inference.json --recompute
