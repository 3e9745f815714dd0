//! Savepoints from the format writer: sizes, two-byte key-group prefixes,
//! snappy, and a serializer we do not know.

mod common;
use flink_state::writer::{expected_lines, write_canonical_savepoint, SyntheticSpec};
use flink_state::{DirStorage, DumpOptions, FlinkError, FlinkSnapshot};

fn dump(spec: &SyntheticSpec) -> (Vec<serde_json::Value>, Vec<FlinkError>) {
    let dir = tempfile::tempdir().unwrap();
    write_canonical_savepoint(dir.path(), spec).unwrap();
    let storage = DirStorage::new(dir.path());
    let snap = FlinkSnapshot::open(&storage, "").unwrap();
    let op = snap.metadata.operator(&spec.uid).unwrap();
    let mut lines = Vec::new();
    let opts = DumpOptions {
        check_key_groups: true,
        ..Default::default()
    };
    let report = snap.dump(op, &opts, &mut |j| {
        lines.push(serde_json::from_str(&j.to_line()).unwrap());
        Ok(())
    });
    let report = report.unwrap();
    (lines, report.errors)
}

fn check_values(lines: &[serde_json::Value]) {
    let find = |state: &str, key: &str| {
        lines
            .iter()
            .find(|l| l["state"] == state && l["key"] == key)
            .unwrap_or_else(|| panic!("{state} {key}"))
    };
    assert_eq!(find("count", "key-00000007")["value"], 7);
    let t = find("title", "key-00000007");
    assert_eq!(t["value"], "title 7 ☃");
    assert_eq!(t["ttl_timestamp"], 1_700_000_000_007i64);
    assert_eq!(
        find("events", "key-00000002")["value"],
        serde_json::json!([
            1_700_000_000_002i64,
            1_700_000_000_003i64,
            1_700_000_000_004i64
        ])
    );
    assert_eq!(
        find("attrs", "key-00000002")["value"],
        serde_json::json!([[0, "attr-0"], [1, "attr-1"]])
    );
    let timer = lines
        .iter()
        .find(|l| l["kind"] == "timer" && l["key"] == "key-00000003")
        .unwrap();
    assert_eq!(timer["timestamp"], 1_700_000_000_003i64 + 3_600_000);
    assert_eq!(timer["domain"], "event");
}

#[test]
fn one_byte_prefix_plain() {
    let spec = SyntheticSpec {
        keys: 500,
        ..Default::default()
    };
    let (lines, errors) = dump(&spec);
    assert!(errors.is_empty());
    assert_eq!(lines.len() as u64, expected_lines(&spec));
    check_values(&lines);
}

#[test]
fn two_byte_prefix_above_128_and_snappy() {
    let spec = SyntheticSpec {
        keys: 700,
        max_parallelism: 1024,
        compressed: true,
        ..Default::default()
    };
    let (lines, errors) = dump(&spec);
    assert!(errors.is_empty());
    assert_eq!(lines.len() as u64, expected_lines(&spec));
    check_values(&lines);
}

#[test]
fn unknown_serializer_names_operator_state_and_class_and_the_rest_stays_readable() {
    let spec = SyntheticSpec {
        keys: 100,
        kryo_state: true,
        ..Default::default()
    };
    let (lines, errors) = dump(&spec);
    assert_eq!(errors.len(), 1);
    let msg = errors[0].to_string();
    assert!(
        msg.contains("operator synthetic")
            && msg.contains("state opaque")
            && msg.contains("KryoSerializerSnapshot"),
        "{msg}"
    );
    assert_eq!(lines.len() as u64, spec.keys * 5);
    check_values(&lines);
}

/// convert's building blocks: Avro schemas for the states and entries
/// re-encoded as standard Avro binary.
#[test]
fn convert_plans_and_transcodes_entries() {
    use flink_state::convert::{convert_entry, plan, ConvertedValue, TargetKind};
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec {
        keys: 50,
        kryo_state: true,
        ..Default::default()
    };
    write_canonical_savepoint(dir.path(), &spec).unwrap();
    let storage = DirStorage::new(dir.path());
    let snap = FlinkSnapshot::open(&storage, "").unwrap();
    let op = snap.metadata.operator("synthetic").unwrap();
    let header = snap.keyed_header(op).unwrap().unwrap();
    let (plans, skipped) = plan(&header);
    assert_eq!(
        plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["count", "title", "events", "attrs"]
    );
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(plans[3].kind, TargetKind::Map);
    let mut seen = 0;
    snap.scan_raw(op, None, &mut |h, state, k, v| {
        let Some(p) = plans.iter().find(|p| p.state == state) else {
            return Ok(());
        };
        let e = convert_entry(p, h, 1, k, v)?;
        if p.name == "count" && e.key == b"key-00000007" {
            assert_eq!(e.value, ConvertedValue::Single(vec![14])); // zig-zag 7
        }
        if p.name == "events" {
            assert!(matches!(&e.value, ConvertedValue::List(items) if items.len() == 3));
        }
        seen += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, 50 * 5);
}
