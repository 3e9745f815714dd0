#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a local
# S3-compatible server, runs every test in the one release profile, stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh

endpoint=$(scripts/s3-server.sh start)
trap 'scripts/s3-server.sh stop' EXIT
export S3_TEST_ENDPOINT="$endpoint" AWS_ENDPOINT_URL="$endpoint"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
echo "test: S3-compatible server at $S3_TEST_ENDPOINT"

# One profile (release) for everything: RocksDB's C++ is compiled once.
cargo build --release --workspace --all-targets
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --no-fail-fast
