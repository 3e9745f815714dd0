//! End-to-end suites live in `tests/`: they run the released binaries
//! (`stream-join`, `savepoint`) built by `cargo build --release --workspace`
//! next to each other, on state that the real job wrote.
