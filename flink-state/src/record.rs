//! The JSON lines a dump prints, in the shapes of Flink's own dump (the
//! fixtures' gt-*.jsonl): keyed-state, timer and operator-list-state lines.
//! Map state arrives one entry per map key and is put back together here.

use crate::entry::{split_ttl, split_ttl_list, Decoded};
use crate::header::{StateKind, StateMeta};
use crate::json::Json;

/// `_timer_state/event_user-timers` -> ("event", "user-timers").
pub fn timer_service(state: &str) -> (&str, &str) {
    let s = state.strip_prefix("_timer_state/").unwrap_or(state);
    match s.split_once('_') {
        Some(("event", svc)) => ("event", svc),
        Some(("processing", svc)) => ("processing", svc),
        _ => ("", s),
    }
}

pub fn timer_line(operator: &str, state: &str, key: Json, namespace: Json, timestamp: i64) -> Json {
    let (domain, service) = timer_service(state);
    Json::obj(vec![
        ("operator", Json::str(operator)),
        ("kind", Json::str("timer")),
        ("timer_service", Json::str(service)),
        ("domain", Json::str(domain)),
        ("key", key),
        ("namespace", namespace),
        ("timestamp", Json::Int(timestamp)),
    ])
}

pub fn keyed_line(
    operator: &str,
    state: &str,
    key: Json,
    namespace: Json,
    value: Json,
    ttl: Option<Json>,
) -> Json {
    let mut f = vec![
        ("operator", Json::str(operator)),
        ("kind", Json::str("keyed-state")),
        ("state", Json::str(state)),
        ("key", key),
        ("namespace", namespace),
        ("value", value),
    ];
    if let Some(t) = ttl {
        f.push(("ttl_timestamp", t));
    }
    Json::obj(f)
}

pub fn operator_line(operator: &str, state: &str, mode: &str, value: Json) -> Json {
    Json::obj(vec![
        ("operator", Json::str(operator)),
        ("kind", Json::str("operator-list-state")),
        ("state", Json::str(state)),
        ("mode", Json::str(mode)),
        ("value", value),
    ])
}

/// A whole value (heap checkpoints hold lists and maps whole) as printed:
/// TTL wrappers taken off into their timestamps, map entries sorted.
pub fn present_whole(kind: &StateKind, value: Json) -> (Json, Option<Json>) {
    match (kind, value) {
        (StateKind::List, Json::Arr(items)) => {
            let (v, t) = split_ttl_list(items);
            (Json::Arr(v), t)
        }
        (StateKind::Map, Json::Arr(entries)) => {
            let mut pairs: Vec<(Json, Json, Option<Json>)> = entries
                .into_iter()
                .map(|e| match e {
                    Json::Arr(mut kv) if kv.len() == 2 => {
                        let (v, t) = split_ttl(kv.pop().unwrap_or(Json::Null));
                        (kv.pop().unwrap_or(Json::Null), v, t)
                    }
                    other => (other, Json::Null, None),
                })
                .collect();
            pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
            map_value(pairs)
        }
        (_, v) => split_ttl(v),
    }
}

fn map_value(pairs: Vec<(Json, Json, Option<Json>)>) -> (Json, Option<Json>) {
    let has_ttl = pairs.iter().any(|p| p.2.is_some());
    let mut entries = Vec::with_capacity(pairs.len());
    let mut stamps = Vec::new();
    for (k, v, t) in pairs {
        entries.push(Json::Arr(vec![k, v]));
        stamps.push(t.unwrap_or(Json::Null));
    }
    (Json::Arr(entries), has_ttl.then_some(Json::Arr(stamps)))
}

/// Turns decoded entries into lines, joining the consecutive entries of
/// one map (same state, key and namespace) into one line.
pub struct LineBuilder {
    operator: String,
    pending: Option<PendingMap>,
}

struct PendingMap {
    state: String,
    key: Json,
    namespace: Json,
    entries: Vec<(Json, Json, Option<Json>)>,
}

impl LineBuilder {
    pub fn new(operator: &str) -> Self {
        LineBuilder {
            operator: operator.to_string(),
            pending: None,
        }
    }

    /// Feeds one entry; appends the (state, line) pairs it completes.
    pub fn push(&mut self, state: &StateMeta, d: Decoded, out: &mut Vec<(String, Json)>) {
        match d {
            Decoded::Timer {
                key,
                namespace,
                timestamp,
            } => {
                self.flush(out);
                let line = timer_line(&self.operator, &state.name, key, namespace, timestamp);
                out.push((state.name.clone(), line));
            }
            Decoded::Keyed {
                key,
                namespace,
                user_key: Some(uk),
                value,
                ttl,
            } => {
                let same = self.pending.as_ref().is_some_and(|p| {
                    p.state == state.name && p.key == key && p.namespace == namespace
                });
                if !same {
                    self.flush(out);
                    self.pending = Some(PendingMap {
                        state: state.name.clone(),
                        key,
                        namespace,
                        entries: Vec::new(),
                    });
                }
                if let Some(p) = self.pending.as_mut() {
                    p.entries.push((uk, value, ttl));
                }
            }
            Decoded::Keyed {
                key,
                namespace,
                user_key: None,
                value,
                ttl,
            } => {
                self.flush(out);
                let line = keyed_line(&self.operator, &state.name, key, namespace, value, ttl);
                out.push((state.name.clone(), line));
            }
        }
    }

    pub fn flush(&mut self, out: &mut Vec<(String, Json)>) {
        if let Some(mut p) = self.pending.take() {
            p.entries.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (value, ttl) = map_value(p.entries);
            let line = keyed_line(&self.operator, &p.state, p.key, p.namespace, value, ttl);
            out.push((p.state, line));
        }
    }
}
