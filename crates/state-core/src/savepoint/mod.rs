//! Savepoints: self-contained, portable copies of a store (see docs/savepoint-format.md).
