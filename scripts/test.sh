#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, formatting, lints, then every test (release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
# Library, binary and integration tests; benches and examples are type-checked by clippy above and
# run on demand (cargo bench), since they run for minutes.
cargo test --release --lib --bins --tests
