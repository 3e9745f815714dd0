//! `savepoint convert`: one Flink operator's keyed state as a savepoint of
//! this toolkit. Entries are re-encoded by flink-state (standard Avro
//! values, UTF-8 or ordered-i64 keys), loaded into a temporary state store
//! with their key groups recomputed the toolkit's way, and written with
//! `create_from_store`, so that dump, diff, verify, migrate and compact
//! (and Avro tools) work on the result.

use crate::commands::{CmdError, Ctx, Outcome};
use crate::flink_rocksdb::FlinkLsm;
use flink_state::convert::{
    convert_entry, convert_timer, key_form_of, plan, ConvertedValue, KeyForm, StatePlan, TargetKind,
};
use flink_state::entry::key_group_prefix_len;
use flink_state::{FlinkError, FlinkSnapshot, StateKind};
use serde_json::json;
use state_core::envelope::{encode, push_list_element};
use state_core::savepoint::{create_from_store, SourceInfo, WriteOptions};
use state_core::{
    key_group_of, KeyFormat, RawEntry, StateDescriptor, StateStore, StoreOptions, Timer,
};
use std::fmt::Write as _;

/// Timer payloads start with the domain: Flink keeps event and
/// processing timers apart, the toolkit has one timer service.
const EVENT: u8 = 0;
const PROCESSING: u8 = 1;

fn key_format(k: KeyForm) -> KeyFormat {
    match k {
        KeyForm::Utf8 => KeyFormat::Utf8,
        KeyForm::I64 => KeyFormat::I64,
        KeyForm::Bytes => KeyFormat::Bytes,
    }
}

fn descriptor(p: &StatePlan) -> StateDescriptor {
    let d = match p.kind {
        TargetKind::Value => StateDescriptor::value(&p.name, &p.value_schema),
        TargetKind::List => StateDescriptor::list(&p.name, &p.value_schema),
        TargetKind::Map => StateDescriptor::map(&p.name, &p.value_schema)
            .with_user_key_format(key_format(p.user_key)),
    };
    d.with_key_format(key_format(p.key))
}

/// The toolkit's stored value: an envelope (schema version 1, no expiry:
/// Flink's TTL keeps a last-access time, not an expiry) per value.
fn stored_value(v: &ConvertedValue) -> Vec<u8> {
    match v {
        ConvertedValue::Single(b) => encode(1, None, b),
        ConvertedValue::List(items) => {
            let mut raw = Vec::new();
            for it in items {
                push_list_element(&mut raw, &encode(1, None, it));
            }
            raw
        }
    }
}

fn lsm_err(e: state_core::StateError) -> FlinkError {
    FlinkError::Lsm(format!("writing the temporary store: {e}"))
}

pub fn convert(
    ctx: &Ctx,
    snap: &FlinkSnapshot,
    src: &str,
    operator: &str,
    to: &str,
) -> Result<Outcome, CmdError> {
    let op = snap.metadata.operator(operator)?;
    let header = snap
        .keyed_header(op)?
        .ok_or_else(|| format!("operator {} has no keyed state", op.label()))?;
    let (plans, skipped) = plan(&header);
    let max_p = u16::try_from(op.max_parallelism).map_err(|_| "max parallelism above 65535")?;
    let tmp = tempfile::Builder::new()
        .prefix("flink-convert-")
        .tempdir_in(&ctx.work_dir)?;
    let opts =
        StoreOptions::new(plans.iter().map(descriptor).collect()).with_max_parallelism(max_p);
    let store = StateStore::open(tmp.path().join("store"), opts)?;
    let prefix_len = key_group_prefix_len(op.max_parallelism);
    let key_form = key_form_of(&header);
    let (mut entries, mut timers) = (0u64, 0u64);
    let mut w = store.raw_writer();
    snap.scan_raw(op, Some(&FlinkLsm), &mut |h, idx, k, v| {
        let Some(state) = h.states.get(idx) else {
            return Ok(());
        };
        if state.kind == StateKind::Timers {
            let t = convert_timer(state, key_form, prefix_len, k)?;
            let domain = if state.name.starts_with("_timer_state/processing_") {
                PROCESSING
            } else {
                EVENT
            };
            let mut payload = vec![domain];
            payload.extend(&t.payload);
            let timer = Timer {
                timestamp: t.timestamp,
                key_group: key_group_of(&t.key, max_p),
                key: t.key,
                payload,
            };
            w.put_timer(&timer).map_err(lsm_err)?;
            timers += 1;
        } else if let Some(p) = plans.iter().find(|p| p.state == idx) {
            let e = convert_entry(p, h, prefix_len, k, v)?;
            let raw = RawEntry {
                key_group: key_group_of(&e.key, max_p),
                value: stored_value(&e.value),
                key: e.key,
                namespace: e.namespace,
                user_key: e.user_key,
            };
            w.put(&p.name, &raw).map_err(lsm_err)?;
            entries += 1;
        }
        w.maybe_commit().map_err(lsm_err)
    })?;
    w.commit()?;
    let user = json!({"converted_from": {"format": "flink", "location": src, "operator": op.label(), "operator_id": op.id_hex(), "checkpoint_id": snap.metadata.checkpoint_id}});
    let meta = create_from_store(
        &store,
        user,
        SourceInfo::savepoint(src, "convert"),
        to,
        WriteOptions {
            work_dir: Some(ctx.work_dir.clone()),
            ..WriteOptions::default()
        },
    )?;
    let mut table = format!(
        "converted operator {} ({} entries, {} timers) to {to}\n",
        op.label(),
        entries,
        timers
    );
    for s in &meta.states {
        let _ = writeln!(
            table,
            "  state {:<30} {:<6} {} entries",
            s.descriptor.name,
            s.descriptor.kind.name(),
            s.entries
        );
    }
    for (name, why) in &skipped {
        let _ = writeln!(table, "  skipped {name}: {why}");
    }
    let skipped_json: Vec<_> = skipped
        .iter()
        .map(|(n, w)| json!({"state": n, "reason": w}))
        .collect();
    Ok(Outcome {
        json: json!({"converted": to, "operator": op.label(), "entries": entries, "timers": timers, "states": meta.states.iter().map(|s| json!({"name": s.descriptor.name, "entries": s.entries})).collect::<Vec<_>>(), "skipped": skipped_json}),
        table,
        code: 0,
    })
}
