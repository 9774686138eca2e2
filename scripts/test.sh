#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, formatting, lints, then every test (release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh
cargo fmt --check
# The binary users build (no fault points), then everything with the test-only fault points.
cargo clippy --release --lib --bins -- -D warnings
cargo clippy --release --all-targets --features fault-injection -- -D warnings
# The Grafana dashboard's structure, and every PromQL expression parsed by promtool.
python3 scripts/dashboard-queries.py --check
# Library, binary and integration tests; benches and examples are type-checked by clippy above and
# run on demand (cargo bench), since they run for minutes. The fault-injection feature compiles in
# the fault points that the kill and failure tests use (src/fault.rs).
cargo test --release --lib --bins --tests --features fault-injection
# The systemd unit, with systemd's own checker (on the binary just built): verify, and a
# security exposure of at most 2.5.
./scripts/check-service.sh target/release/evnas
