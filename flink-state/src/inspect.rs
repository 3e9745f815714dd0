//! What `inspect` shows of a Flink snapshot: operators, their keyed and
//! operator states with kinds and serializers, key-group ranges, and with
//! `deep` the entry counts and key-group skew (which read every entry).
//! Without `deep` only `_metadata` and the state headers are read.

use crate::header::{KeyedHeader, StateMeta};
use crate::json::Json;
use crate::lsm::LsmScanner;
use crate::metadata::OperatorState;
use crate::snapshot::{DumpOptions, DumpReport, FlinkSnapshot};
use std::fmt::Write;

pub fn inspect(snap: &FlinkSnapshot, deep: bool, lsm: Option<&dyn LsmScanner>) -> Json {
    let m = &snap.metadata;
    let ops = m
        .operators
        .iter()
        .map(|op| operator(snap, op, deep, lsm))
        .collect();
    Json::obj(vec![
        ("format", Json::str("flink")),
        ("kind", Json::str(snap.kind())),
        ("metadata_version", Json::Int(m.version as i64)),
        ("checkpoint_id", Json::Int(m.checkpoint_id)),
        ("metadata_bytes", Json::Int(snap.metadata_size as i64)),
        ("operators", Json::Arr(ops)),
    ])
}

fn operator(
    snap: &FlinkSnapshot,
    op: &OperatorState,
    deep: bool,
    lsm: Option<&dyn LsmScanner>,
) -> Json {
    let ranges = op
        .subtasks
        .iter()
        .filter_map(|s| s.managed_keyed.as_ref())
        .map(|h| {
            let r = h.range();
            Json::Arr(vec![
                Json::Int(r.start as i64),
                Json::Int(r.end_inclusive() as i64),
            ])
        })
        .collect();
    let mut f = vec![
        ("name", Json::str(&op.name)),
        ("uid", Json::str(&op.uid)),
        ("id", Json::str(op.id_hex())),
        ("parallelism", Json::Int(op.parallelism as i64)),
        ("max_parallelism", Json::Int(op.max_parallelism as i64)),
        ("finished", Json::Bool(op.finished)),
        ("key_group_ranges", Json::Arr(ranges)),
    ];
    let report = if deep && (op.has_keyed_state() || op.has_operator_state()) {
        Some(snap.dump(
            op,
            &DumpOptions {
                lsm,
                ..Default::default()
            },
            &mut |_| Ok(()),
        ))
    } else {
        None
    };
    let counts = report.as_ref().and_then(|r| r.as_ref().ok());
    match snap.keyed_header(op) {
        Ok(Some(h)) => f.extend(keyed(&h, counts)),
        Ok(None) => {}
        Err(e) => f.push(("error", Json::str(e.to_string()))),
    }
    match snap.operator_header(op) {
        Ok(Some(h)) => {
            let states = h
                .states
                .iter()
                .chain(&h.broadcast)
                .map(|s| state(s, counts))
                .collect();
            f.push(("operator_states", Json::Arr(states)));
        }
        Ok(None) => {}
        Err(e) => f.push(("error", Json::str(e.to_string()))),
    }
    if let Some(Err(e)) = &report {
        f.push(("deep_error", Json::str(e.to_string())));
    }
    if let Some(r) = counts {
        f.push(("key_group_skew", skew(r)));
        if !r.errors.is_empty() {
            f.push((
                "unreadable",
                Json::Arr(r.errors.iter().map(|e| Json::str(e.to_string())).collect()),
            ));
        }
    }
    Json::obj(f)
}

fn keyed(h: &KeyedHeader, counts: Option<&DumpReport>) -> Vec<(&'static str, Json)> {
    vec![
        ("key_serializer", Json::str(h.key.describe())),
        ("compressed", Json::Bool(h.compressed)),
        (
            "keyed_states",
            Json::Arr(h.states.iter().map(|s| state(s, counts)).collect()),
        ),
    ]
}

fn state(s: &StateMeta, counts: Option<&DumpReport>) -> Json {
    let mut f = vec![
        ("name", Json::str(&s.name)),
        ("kind", Json::str(s.kind.name())),
    ];
    for (role, ser) in &s.serializers {
        let role = role.trim_end_matches("_SERIALIZER").to_lowercase();
        f.push((leak(role), Json::str(ser.describe())));
    }
    f.push(("ttl", Json::Bool(s.has_ttl())));
    if let Some(c) = s.unknown_class() {
        f.push(("unknown_serializer", Json::str(c)));
    }
    if let Some(r) = counts {
        f.push((
            "entries",
            Json::Int(r.per_state.get(&s.name).copied().unwrap_or(0) as i64),
        ));
    }
    Json::obj(f)
}

/// Serializer roles are a handful of fixed names; keep the field names
/// static without a lookup table.
fn leak(role: String) -> &'static str {
    match role.as_str() {
        "value" => "value",
        "namespace" => "namespace",
        "key" => "key",
        _ => Box::leak(role.into_boxed_str()),
    }
}

fn skew(r: &DumpReport) -> Json {
    let counts: Vec<u64> = r.per_key_group.values().copied().collect();
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    let mean = if counts.is_empty() {
        0.0
    } else {
        counts.iter().sum::<u64>() as f64 / counts.len() as f64
    };
    Json::obj(vec![
        ("key_groups_used", Json::Int(counts.len() as i64)),
        ("min", Json::Int(min as i64)),
        ("max", Json::Int(max as i64)),
        ("mean", Json::Float((mean * 10.0).round() / 10.0)),
    ])
}

/// The human form of [`inspect`]'s answer.
pub fn render_text(j: &Json) -> String {
    let mut out = String::new();
    let s = |j: &Json, k: &str| match j.get(k) {
        Some(Json::Str(s)) => s.clone(),
        Some(v) => v.to_line(),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "Flink {} (_metadata v{}, checkpoint {}, {} bytes)",
        s(j, "kind"),
        s(j, "metadata_version"),
        s(j, "checkpoint_id"),
        s(j, "metadata_bytes")
    );
    let Some(Json::Arr(ops)) = j.get("operators") else {
        return out;
    };
    for op in ops {
        let uid = s(op, "uid");
        let _ = writeln!(
            out,
            "\noperator {:?} uid {} id {}  parallelism {}/{}{}",
            s(op, "name"),
            if uid.is_empty() { "-".into() } else { uid },
            s(op, "id"),
            s(op, "parallelism"),
            s(op, "max_parallelism"),
            if s(op, "finished") == "true" {
                " (finished)"
            } else {
                ""
            }
        );
        if let Some(Json::Arr(r)) = op.get("key_group_ranges") {
            if !r.is_empty() {
                let _ = writeln!(
                    out,
                    "  key groups: {}  key: {}",
                    r.iter().map(Json::to_line).collect::<Vec<_>>().join(" "),
                    s(op, "key_serializer")
                );
            }
        }
        for (label, key) in [("keyed", "keyed_states"), ("operator", "operator_states")] {
            let Some(Json::Arr(states)) = op.get(key) else {
                continue;
            };
            for st in states {
                let entries = st
                    .get("entries")
                    .map(|e| format!("  {} entries", e.to_line()))
                    .unwrap_or_default();
                let ns = st
                    .get("namespace")
                    .map(|_| format!(" ns {}", s(st, "namespace")))
                    .unwrap_or_default();
                let ttl = if s(st, "ttl") == "true" { " TTL" } else { "" };
                let unknown = st
                    .get("unknown_serializer")
                    .map(|c| format!("  UNREADABLE: unknown serializer {}", c.to_line()))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {label} {:<40} {:<12} value {}{ns}{ttl}{entries}{unknown}",
                    s(st, "name"),
                    s(st, "kind"),
                    s(st, "value")
                );
            }
        }
        if let Some(sk) = op.get("key_group_skew") {
            let _ = writeln!(
                out,
                "  key-group skew: {} groups used, entries per group min {} max {} mean {}",
                s(sk, "key_groups_used"),
                s(sk, "min"),
                s(sk, "max"),
                s(sk, "mean")
            );
        }
        for k in ["error", "deep_error"] {
            if op.get(k).is_some() {
                let _ = writeln!(out, "  error: {}", s(op, k));
            }
        }
        if let Some(Json::Arr(errs)) = op.get("unreadable") {
            for e in errs {
                let _ = writeln!(out, "  unreadable: {}", e.to_line());
            }
        }
    }
    out
}
