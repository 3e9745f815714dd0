//! The Avro schemas the job buffers events with (version 1 of each).
//!
//! The job's Rust records are always encoded with these canonical schemas;
//! when a store's current schema is another version (an evolved schema from
//! the registry), the codec resolves between the two with plans compiled once.

pub const IMPRESSION_V1: &str = r#"{"type":"record","name":"Impression","namespace":"streamstate.workload","fields":[
  {"name":"impression_id","type":"long"},
  {"name":"profile_id","type":"long"},
  {"name":"title_id","type":"long"},
  {"name":"ts_ms","type":"long"},
  {"name":"row","type":"int"},
  {"name":"rank","type":"int"},
  {"name":"device","type":"string"}]}"#;

pub const PLAY_V1: &str = r#"{"type":"record","name":"Play","namespace":"streamstate.workload","fields":[
  {"name":"play_id","type":"long"},
  {"name":"profile_id","type":"long"},
  {"name":"title_id","type":"long"},
  {"name":"ts_ms","type":"long"},
  {"name":"duration_ms","type":"long"}]}"#;

/// Registry subjects, Confluent's TopicNameStrategy naming.
pub const IMPRESSION_SUBJECT: &str = "impressions-value";
pub const PLAY_SUBJECT: &str = "plays-value";
