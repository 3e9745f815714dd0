//! One operator's keyed state re-encoded for a savepoint of this toolkit:
//! values as standard Avro binary (Flink's own Avro encoding and its
//! primitive serializers are not Avro), keys as UTF-8 or order-preserving
//! i64, namespaces as bytes. States whose serializers have no Avro form
//! here are listed as skipped, with the reason.

use crate::bytes::Reader;
use crate::error::{FlinkError, Result};
use crate::header::{KeyedHeader, StateKind, StateMeta};
use crate::serializer::Serializer;
use crate::value::decode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyForm {
    Utf8,
    I64,
    Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    Value,
    List,
    Map,
}

/// How one Flink state becomes a toolkit state.
#[derive(Clone, Debug)]
pub struct StatePlan {
    pub state: usize,
    pub name: String,
    pub kind: TargetKind,
    pub value_schema: String,
    pub key: KeyForm,
    pub user_key: KeyForm,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConvertedValue {
    Single(Vec<u8>),
    List(Vec<Vec<u8>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvertedEntry {
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
    pub user_key: Vec<u8>,
    pub value: ConvertedValue,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConvertedTimer {
    pub key: Vec<u8>,
    pub timestamp: i64,
    /// The timer's namespace bytes (e.g. a window), kept as its payload.
    pub payload: Vec<u8>,
}

/// The plans of the states that convert, and (name, reason) of the others.
pub fn plan(header: &KeyedHeader) -> (Vec<StatePlan>, Vec<(String, String)>) {
    let (mut plans, mut skipped) = (Vec::new(), Vec::new());
    for (i, s) in header.states.iter().enumerate() {
        if s.kind == StateKind::Timers {
            continue;
        }
        match plan_state(i, s, &header.key) {
            Ok(p) => plans.push(p),
            Err(reason) => skipped.push((s.name.clone(), reason)),
        }
    }
    (plans, skipped)
}

fn plan_state(i: usize, s: &StateMeta, key: &Serializer) -> Result<StatePlan, String> {
    if let Some(c) = key.unknown_class().or_else(|| s.unknown_class()) {
        return Err(format!("unknown serializer {c}"));
    }
    let v = s.value_serializer().ok_or("no value serializer")?;
    let (kind, value, user_key) = match (&s.kind, v) {
        (StateKind::List, Serializer::List(e)) => (TargetKind::List, e.as_ref(), KeyForm::Bytes),
        (StateKind::Map, Serializer::Map(k, v)) => (TargetKind::Map, v.as_ref(), key_form(k)),
        (StateKind::Value | StateKind::Aggregating | StateKind::Reducing, v) => {
            (TargetKind::Value, v, KeyForm::Bytes)
        }
        (k, _) => return Err(format!("{} state has no toolkit form", k.name())),
    };
    let value_schema = avro_schema(unttl(value))
        .ok_or_else(|| format!("values of {} have no Avro form here", value.describe()))?;
    Ok(StatePlan {
        state: i,
        name: s.name.clone(),
        kind,
        value_schema,
        key: key_form(key),
        user_key,
    })
}

fn unttl(s: &Serializer) -> &Serializer {
    match s {
        Serializer::Ttl(u) => u,
        s => s,
    }
}

fn key_form(s: &Serializer) -> KeyForm {
    match s {
        Serializer::String | Serializer::StringData => KeyForm::Utf8,
        Serializer::Long | Serializer::Int | Serializer::Short | Serializer::Byte => KeyForm::I64,
        _ => KeyForm::Bytes,
    }
}

/// The Avro schema a Flink value serializer maps to.
pub fn avro_schema(s: &Serializer) -> Option<String> {
    Some(match s {
        Serializer::Avro(a) => a.json.clone(),
        Serializer::String | Serializer::StringData | Serializer::Char => "\"string\"".into(),
        Serializer::Long | Serializer::TimestampData(0..=3) => "\"long\"".into(),
        Serializer::Int | Serializer::Short | Serializer::Byte => "\"int\"".into(),
        Serializer::Boolean => "\"boolean\"".into(),
        Serializer::Float => "\"float\"".into(),
        Serializer::Double => "\"double\"".into(),
        Serializer::Bytes => "\"bytes\"".into(),
        Serializer::TimeWindow => r#"{"type":"record","name":"TimeWindow","fields":[{"name":"start","type":"long"},{"name":"end","type":"long"}]}"#.into(),
        _ => return None,
    })
}

/// Reads one Flink value and writes it as Avro binary.
pub fn to_avro(s: &Serializer, r: &mut Reader, out: &mut Vec<u8>) -> Result<()> {
    use crate::avro::put_long;
    let put_str = |out: &mut Vec<u8>, b: &[u8]| {
        put_long(out, b.len() as i64);
        out.extend_from_slice(b);
    };
    match s {
        Serializer::Ttl(u) => {
            r.i64("ttl timestamp")?;
            to_avro(u, r, out)?
        }
        Serializer::Avro(a) => a.transcode(r, out)?,
        Serializer::Long | Serializer::TimestampData(_) => put_long(out, r.i64("long")?),
        Serializer::Int => put_long(out, r.i32("int")? as i64),
        Serializer::Short => put_long(out, r.i16("short")? as i64),
        Serializer::Byte => put_long(out, r.u8("byte")? as i8 as i64),
        Serializer::Boolean => out.push(r.bool("boolean")? as u8),
        Serializer::Float => out.extend(f32::from_bits(r.u32("float")?).to_le_bytes()),
        Serializer::Double => out.extend(f64::from_bits(r.i64("double")? as u64).to_le_bytes()),
        Serializer::TimeWindow => {
            put_long(out, r.i64("window start")?);
            put_long(out, r.i64("window end")?);
        }
        Serializer::String | Serializer::Char | Serializer::StringData | Serializer::Bytes => {
            match decode(s, r)? {
                crate::json::Json::Str(t) if matches!(s, Serializer::Bytes) => {
                    put_str(out, &t.chars().map(|c| c as u8).collect::<Vec<_>>())
                }
                crate::json::Json::Str(t) => put_str(out, t.as_bytes()),
                _ => put_str(out, b""),
            }
        }
        other => {
            return Err(FlinkError::Unsupported(format!(
                "converting values of {}",
                other.describe()
            )))
        }
    }
    Ok(())
}

/// A key (or user key) in the toolkit's form.
fn key_bytes(form: KeyForm, s: &Serializer, r: &mut Reader) -> Result<Vec<u8>> {
    let start = r.pos();
    let v = decode(s, r)?;
    Ok(match (form, v) {
        (KeyForm::Utf8, crate::json::Json::Str(t)) => t.into_bytes(),
        (KeyForm::I64, crate::json::Json::Int(i)) => {
            ((i as u64) ^ (1 << 63)).to_be_bytes().to_vec()
        }
        _ => r.rest_before(start).to_vec(),
    })
}

/// Converts one entry in RocksDB layout (composite key, value).
pub fn convert_entry(
    plan: &StatePlan,
    header: &KeyedHeader,
    prefix_len: usize,
    key: &[u8],
    value: &[u8],
) -> Result<ConvertedEntry> {
    let state = header
        .states
        .get(plan.state)
        .ok_or_else(|| FlinkError::malformed("state", 0, "no such state"))?;
    let mut r = Reader::new(key);
    r.skip(prefix_len, "key group prefix")?;
    let ambiguous = header.key.fixed_len().is_none()
        && state
            .namespace_serializer()
            .is_some_and(|n| n.fixed_len().is_none());
    let k = key_bytes(plan.key, &header.key, &mut r)?;
    if ambiguous {
        r.varint("key length")?;
    }
    let ns_start = r.pos();
    if let Some(ns) = state.namespace_serializer() {
        decode(ns, &mut r)?;
    }
    let namespace = match state.namespace_serializer() {
        Some(Serializer::VoidNamespace) | None => Vec::new(),
        _ => r.rest_before(ns_start).to_vec(),
    };
    if ambiguous {
        r.varint("namespace length")?;
    }
    let mut vr = Reader::new(value);
    let (user_key, value) = match (plan.kind, state.value_serializer()) {
        (TargetKind::Map, Some(Serializer::Map(uk, v))) => {
            let user_key = key_bytes(plan.user_key, uk, &mut r)?;
            let mut out = Vec::new();
            if !vr.bool("map null flag")? {
                to_avro(v, &mut vr, &mut out)?;
            }
            (user_key, ConvertedValue::Single(out))
        }
        (TargetKind::List, Some(Serializer::List(e))) => {
            let mut items = Vec::new();
            while !vr.is_empty() {
                if !items.is_empty() {
                    vr.u8("list delimiter")?;
                }
                let mut out = Vec::new();
                to_avro(e, &mut vr, &mut out)?;
                items.push(out);
            }
            (Vec::new(), ConvertedValue::List(items))
        }
        (_, Some(v)) => {
            let mut out = Vec::new();
            to_avro(v, &mut vr, &mut out)?;
            (Vec::new(), ConvertedValue::Single(out))
        }
        _ => return Err(FlinkError::malformed("state", 0, "no value serializer")),
    };
    Ok(ConvertedEntry {
        key: k,
        namespace,
        user_key,
        value,
    })
}

/// Converts one timer key (`[kg][ts ^ sign][key][namespace]`).
pub fn convert_timer(
    state: &StateMeta,
    key_form: KeyForm,
    prefix_len: usize,
    key: &[u8],
) -> Result<ConvertedTimer> {
    let Some(Serializer::Timer { key: ks, namespace }) = state.value_serializer() else {
        return Err(FlinkError::malformed("timer", 0, "no TimerSerializer"));
    };
    let mut r = Reader::new(key);
    r.skip(prefix_len, "key group prefix")?;
    let timestamp = r.i64("timer timestamp")? ^ i64::MIN;
    let k = key_bytes(key_form, ks, &mut r)?;
    let ns_start = r.pos();
    decode(namespace, &mut r)?;
    let payload = if matches!(namespace.as_ref(), Serializer::VoidNamespace) {
        Vec::new()
    } else {
        r.rest_before(ns_start).to_vec()
    };
    Ok(ConvertedTimer {
        key: k,
        timestamp,
        payload,
    })
}

/// The key form of a header's key serializer.
pub fn key_form_of(header: &KeyedHeader) -> KeyForm {
    key_form(&header.key)
}
