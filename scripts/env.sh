# Sourced by every build entry point (README commands, .ci/run) so that the
# environment RocksDB's build script reads is byte-for-byte the same each time:
# any change to CC, CXX or ROCKSDB_* rebuilds 343 C++ files (~40 min on 2 cores).
export CARGO_TARGET_DIR="${STREAMSTATE_TARGET_DIR:-/var/cache/streamstate/target}"
if command -v sccache >/dev/null 2>&1; then
    export RUSTC_WRAPPER=sccache
    export SCCACHE_DIR="${SCCACHE_DIR:-/var/cache/streamstate/sccache}"
    export SCCACHE_CACHE_SIZE="${SCCACHE_CACHE_SIZE:-20G}"
fi
unset CC CXX CFLAGS CXXFLAGS ROCKSDB_LIB_DIR ROCKSDB_STATIC ROCKSDB_INCLUDE_DIR
export CARGO_INCREMENTAL=0
mkdir -p "$CARGO_TARGET_DIR"
