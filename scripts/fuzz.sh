#!/usr/bin/env bash
# Runs every fuzz target of the decoders of untrusted bytes for SECONDS each
# (default 60) with cargo-fuzz on the nightly toolchain.
#   scripts/fuzz.sh [SECONDS] [--with-rocksdb]
# Without --with-rocksdb only the crates that do not link RocksDB are fuzzed
# (checkpoint-store, schema-registry, flink-state): the others rebuild RocksDB's C++ with
# the fuzzing flags in their own target directory (~40 min on 2 cores).
# A crash leaves its input in <crate>/fuzz/artifacts/ and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
crates=(checkpoint-store schema-registry flink-state)
if [[ "${2:-}" == "--with-rocksdb" ]]; then
    crates+=(state-core savepoint-cli)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
export CARGO_TARGET_DIR=${STREAMSTATE_FUZZ_TARGET_DIR:-/var/cache/streamstate/target-fuzz}
if command -v sccache >/dev/null; then
    export RUSTC_WRAPPER=sccache
fi
unset CC CXX
for crate in "${crates[@]}"; do
    for target in $(cd "$crate" && cargo +nightly fuzz list); do
        echo "== $crate/$target (${seconds}s)"
        (cd "$crate" && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds")
    done
done
