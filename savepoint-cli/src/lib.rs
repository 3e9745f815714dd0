//! The `savepoint` command's implementation; `main.rs` only parses and renders.

pub mod cli;
pub mod commands;
pub mod flink;
pub mod flink_convert;
pub mod flink_rocksdb;
pub mod keys;
pub mod progress;
pub mod schema_cmd;
