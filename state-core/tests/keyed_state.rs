//! Keyed state on a real RocksDB: round trips, reopen, schema evolution,
//! TTL, timers and refusals.

use serde::{Deserialize, Serialize};
use state_core::*;
use std::ops::Bound;
use std::sync::Arc;

const V1: &str = r#"{"type":"record","name":"Impression","fields":[
    {"name":"id","type":"long"},
    {"name":"rank","type":"int"},
    {"name":"device","type":"string"}]}"#;
/// v2: `rank` widened to long, `device` removed, `page` added with a default.
const V2: &str = r#"{"type":"record","name":"Impression","fields":[
    {"name":"id","type":"long"},
    {"name":"rank","type":"long"},
    {"name":"page","type":"string","default":"home"}]}"#;
/// v3: a new field without a default: cannot read v1 or v2 data.
const V3_BAD: &str = r#"{"type":"record","name":"Impression","fields":[
    {"name":"id","type":"long"},
    {"name":"rank","type":"long"},
    {"name":"page","type":"string","default":"home"},
    {"name":"region","type":"string"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ImpV1 {
    id: i64,
    rank: i32,
    device: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ImpV2 {
    id: i64,
    rank: i64,
    page: String,
}

fn states(schema: &str) -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::value("last", schema),
        StateDescriptor::map("buffer", schema).with_user_key_format(KeyFormat::I64),
        StateDescriptor::list("history", schema),
    ]
}

fn imp(id: i64) -> ImpV1 {
    ImpV1 {
        id,
        rank: id as i32 % 7,
        device: format!("tv-{id}"),
    }
}

#[test]
fn value_list_map_round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
        let last = store.value_state_serde::<ImpV1>("last").unwrap();
        let buffer = store.map_state_serde::<ImpV1>("buffer").unwrap();
        let history = store.list_state_serde::<ImpV1>("history").unwrap();
        for k in 0..200i64 {
            let key = k.to_be_bytes();
            last.put(&key, &imp(k)).unwrap();
            for ts in [30i64, -5, 10] {
                buffer
                    .put(&key, &keys::ordered(&ts), &imp(k * 100 + ts))
                    .unwrap();
            }
            history.add(&key, &imp(k)).unwrap();
            history.add(&key, &imp(k + 1)).unwrap();
        }
        last.clear(&7i64.to_be_bytes()).unwrap();
        // Without a WAL, durability across close comes from the flush at
        // checkpoints (or here, explicitly).
        store.flush().unwrap();
    }
    let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
    let last = store.value_state_serde::<ImpV1>("last").unwrap();
    let buffer = store.map_state_serde::<ImpV1>("buffer").unwrap();
    let history = store.list_state_serde::<ImpV1>("history").unwrap();
    for k in 0..200i64 {
        let key = k.to_be_bytes();
        let expected = if k == 7 { None } else { Some(imp(k)) };
        assert_eq!(last.get(&key).unwrap(), expected);
        let entries = buffer.entries(&key).unwrap();
        let ts: Vec<i64> = entries
            .iter()
            .map(|(uk, _)| keys::decode_ordered_i64(uk).unwrap())
            .collect();
        assert_eq!(ts, vec![-5, 10, 30], "user keys iterate in numeric order");
        assert_eq!(entries[0].1, imp(k * 100 - 5));
        assert_eq!(history.get(&key).unwrap(), vec![imp(k), imp(k + 1)]);
    }
    assert_eq!(last.get(&1000i64.to_be_bytes()).unwrap(), None);
    assert!(history.get(&1000i64.to_be_bytes()).unwrap().is_empty());
}

#[test]
fn map_range_scans_and_range_removal() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("db"), StoreOptions::new(states(V1))).unwrap();
    let buffer = store.map_state_serde::<ImpV1>("buffer").unwrap();
    let key = b"profile-1";
    for ts in 0..100i64 {
        buffer
            .put(key, &keys::ordered(&(ts * 10)), &imp(ts))
            .unwrap();
    }
    buffer
        .put(b"profile-2", &keys::ordered(&55i64), &imp(999))
        .unwrap();
    let (lo, hi) = (keys::ordered(&200i64), keys::ordered(&290i64));
    let got = buffer
        .range(key, Bound::Included(&lo), Bound::Included(&hi))
        .unwrap();
    let ids: Vec<i64> = got.iter().map(|(_, v)| v.id).collect();
    assert_eq!(ids, (20..=29).collect::<Vec<_>>());
    let got = buffer
        .range(key, Bound::Excluded(&lo), Bound::Excluded(&hi))
        .unwrap();
    assert_eq!(got.len(), 8);
    buffer
        .remove_range(key, &keys::ordered(&0i64), &keys::ordered(&500i64))
        .unwrap();
    let left = buffer.entries(key).unwrap();
    assert_eq!(left.len(), 50);
    assert_eq!(left[0].1.id, 50);
    assert_eq!(
        buffer.entries(b"profile-2").unwrap().len(),
        1,
        "other keys untouched"
    );
    buffer.clear(key).unwrap();
    assert!(buffer.is_empty(key).unwrap());
    assert!(!buffer.is_empty(b"profile-2").unwrap());
}

#[test]
fn schema_evolution_reads_old_values_through_new_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
        let last = store.value_state_serde::<ImpV1>("last").unwrap();
        let history = store.list_state_serde::<ImpV1>("history").unwrap();
        last.put(b"a", &imp(1)).unwrap();
        history.add(b"a", &imp(1)).unwrap();
        store.flush().unwrap();
    }
    {
        let store = StateStore::open(&path, StoreOptions::new(states(V2))).unwrap();
        assert_eq!(store.state_meta("last").unwrap().schemas.len(), 2);
        let last = store.value_state_serde::<ImpV2>("last").unwrap();
        let history = store.list_state_serde::<ImpV2>("history").unwrap();
        let old = last.get(b"a").unwrap().unwrap();
        assert_eq!(
            old,
            ImpV2 {
                id: 1,
                rank: 1,
                page: "home".into()
            },
            "int widened to long, removed field dropped, added field defaulted"
        );
        last.put(
            b"b",
            &ImpV2 {
                id: 2,
                rank: 1 << 40,
                page: "search".into(),
            },
        )
        .unwrap();
        history
            .add(
                b"a",
                &ImpV2 {
                    id: 3,
                    rank: 5,
                    page: "p".into(),
                },
            )
            .unwrap();
        // A list mixes versions: old element resolved, new one as written.
        let items = history.get(b"a").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].page, "home");
        assert_eq!(items[1].page, "p");
        store.flush().unwrap();
    }
    // Reopening with the same v2 keeps the history at two versions.
    let store = StateStore::open(&path, StoreOptions::new(states(V2))).unwrap();
    assert_eq!(store.state_meta("last").unwrap().schemas.len(), 2);
    let last = store.value_state_serde::<ImpV2>("last").unwrap();
    assert_eq!(last.get(b"b").unwrap().unwrap().rank, 1 << 40);
}

#[test]
fn incompatible_schema_is_refused_with_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
        store
            .value_state_serde::<ImpV1>("last")
            .unwrap()
            .put(b"a", &imp(1))
            .unwrap();
        store.flush().unwrap();
    }
    let err = StateStore::open(&path, StoreOptions::new(states(V3_BAD)))
        .err()
        .expect("v3 must be refused");
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    let msg = err.to_string();
    assert!(msg.contains("region"), "names the field: {msg}");
    assert!(msg.contains("version 1"), "names the writer version: {msg}");
    // Nothing changed: v1 still opens with one schema version and its data.
    let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
    assert_eq!(store.state_meta("last").unwrap().schemas.len(), 1);
    assert_eq!(
        store
            .value_state_serde::<ImpV1>("last")
            .unwrap()
            .get(b"a")
            .unwrap(),
        Some(imp(1))
    );
}

#[test]
fn refusals_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();

    // Locked by this (or another) process.
    let err = StateStore::open(&path, StoreOptions::new(states(V1)))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");

    // Unknown state, wrong kind, key too long.
    assert!(matches!(
        store.value_state_serde::<ImpV1>("nope").err().unwrap(),
        StateError::UnknownState(_)
    ));
    assert!(matches!(
        store.map_state_serde::<ImpV1>("last").err().unwrap(),
        StateError::WrongKind { .. }
    ));
    let last = store.value_state_serde::<ImpV1>("last").unwrap();
    let long = vec![1u8; 70_000];
    assert!(matches!(
        last.put(&long, &imp(1)).unwrap_err(),
        StateError::KeyTooLong { .. }
    ));
    store.flush().unwrap();
    drop(last);
    drop(store);

    // Max parallelism is fixed for the life of a store.
    let err = StateStore::open(
        &path,
        StoreOptions::new(states(V1)).with_max_parallelism(256),
    )
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            StateError::MaxParallelismMismatch {
                stored: 128,
                requested: 256,
                ..
            }
        ),
        "{err}"
    );

    // A directory that is not ours.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "hello").unwrap();
    let err = StateStore::open(&foreign, StoreOptions::new(states(V1)))
        .err()
        .unwrap();
    assert!(matches!(err, StateError::NotOurs { .. }), "{err}");
    assert!(
        foreign.join("notes.txt").exists(),
        "foreign directory untouched"
    );

    // A state redeclared with another kind.
    let redeclared = vec![StateDescriptor::list("last", V1)];
    let err = StateStore::open(&path, StoreOptions::new(redeclared))
        .err()
        .unwrap();
    assert!(matches!(err, StateError::KindChanged { .. }), "{err}");

    // An invalid schema creates nothing.
    let fresh = dir.path().join("fresh");
    let err = StateStore::open(
        &fresh,
        StoreOptions::new(vec![StateDescriptor::value("x", "{not json")]),
    )
    .err()
    .unwrap();
    assert!(matches!(err, StateError::InvalidSchema { .. }), "{err}");
    assert!(!fresh.exists());
}

#[test]
fn corrupt_value_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path().join("db"), StoreOptions::new(states(V1))).unwrap();
    let kg = store.key_group(b"k");
    let mut w = store.raw_writer();
    for value in [
        vec![],
        vec![9, 0, 1],
        vec![1, 0, 1, 0xff, 0xff],
        vec![1, 0, 42, 2],
    ] {
        w.put(
            "last",
            &RawEntry {
                key_group: kg,
                key: b"k".to_vec(),
                namespace: vec![],
                user_key: vec![],
                value,
            },
        )
        .unwrap();
    }
    w.commit().unwrap();
    let last = store.value_state_serde::<ImpV1>("last").unwrap();
    let err = last.get(b"k").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn ttl_in_processing_and_event_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = Arc::new(ManualClock::new(1_000));
    let descs = vec![
        StateDescriptor::value("proc", V1).with_ttl(100, TimeDomain::ProcessingTime),
        StateDescriptor::map("event", V1).with_ttl(50, TimeDomain::EventTime),
    ];
    let opts = || StoreOptions::new(descs.clone()).with_clock(clock.clone());
    {
        let store = StateStore::open(&path, opts()).unwrap();
        store.advance_event_time(500);
        let proc = store.value_state_serde::<ImpV1>("proc").unwrap();
        let event = store.map_state_serde::<ImpV1>("event").unwrap();
        proc.put(b"a", &imp(1)).unwrap(); // expires at 1100
        event.put(b"a", b"1", &imp(1)).unwrap(); // expires at 550
        store.advance_event_time(540);
        event.put(b"a", b"2", &imp(2)).unwrap(); // expires at 590
        clock.set(1_099);
        assert!(proc.get(b"a").unwrap().is_some());
        clock.set(1_100);
        assert!(
            proc.get(b"a").unwrap().is_none(),
            "expired value is invisible"
        );
        store.advance_event_time(560);
        let live: Vec<_> = event
            .entries(b"a")
            .unwrap()
            .into_iter()
            .map(|(_, v)| v.id)
            .collect();
        assert_eq!(live, vec![2]);
        store.flush().unwrap();
    }
    // Across reopen: the compaction filter drops expired entries physically.
    let store = StateStore::open(&path, opts()).unwrap();
    store.advance_event_time(560);
    store.compact().unwrap();
    let count = |state: &str| store.scan(state, KeyGroupRange::all(128)).unwrap().count();
    assert_eq!(
        count("proc"),
        0,
        "expired processing-time value compacted away"
    );
    assert_eq!(count("event"), 1, "only the live event-time entry remains");
    store.advance_event_time(600);
    store.compact().unwrap();
    assert_eq!(count("event"), 0);
}

#[test]
fn timers_fire_in_order_in_bounded_batches_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
        let timers = store.timers();
        for i in 0..100i64 {
            let key = format!("k{}", i % 10);
            timers
                .register(key.as_bytes(), (i * 37) % 1000 - 200)
                .unwrap();
        }
        timers.register(b"k1", 5_000).unwrap();
        timers.delete(b"k1", 5_000).unwrap();
        store.flush().unwrap();
    }
    let store = StateStore::open(&path, StoreOptions::new(states(V1))).unwrap();
    let timers = store.timers();
    assert_eq!(timers.next_timestamp().unwrap(), Some(-200));
    let mut fired = Vec::new();
    let mut batches = 0;
    while timers.fire_due(300, 7, &mut fired).unwrap() > 0 {
        batches += 1;
    }
    assert!(batches >= 2);
    assert!(fired.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(fired.iter().all(|t| t.timestamp <= 300));
    let expected_due = (0..100i64).filter(|i| (i * 37) % 1000 - 200 <= 300).count();
    assert_eq!(fired.len(), expected_due);
    let mut rest = Vec::new();
    timers.fire_due(i64::MAX, usize::MAX, &mut rest).unwrap();
    assert_eq!(
        fired.len() + rest.len(),
        100,
        "the deleted timer never fires"
    );
    assert_eq!(timers.next_timestamp().unwrap(), None);
    for t in fired.iter().chain(&rest) {
        assert_eq!(t.key_group, store.key_group(&t.key));
    }
}

#[test]
fn key_groups_outside_the_instance_are_refused_and_scans_follow_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let range = KeyGroupRange::for_operator(128, 4, 1).unwrap();
    let all = StateStore::open(dir.path().join("all"), StoreOptions::new(states(V1))).unwrap();
    let one = StateStore::open(
        dir.path().join("one"),
        StoreOptions::new(states(V1)).with_key_groups(range),
    )
    .unwrap();
    let (mut inside, mut outside) = (0, 0);
    let last_all = all.value_state_serde::<ImpV1>("last").unwrap();
    let last_one = one.value_state_serde::<ImpV1>("last").unwrap();
    for k in 0..500i64 {
        let key = k.to_be_bytes();
        last_all.put(&key, &imp(k)).unwrap();
        match last_one.put(&key, &imp(k)) {
            Ok(()) => inside += 1,
            Err(StateError::KeyGroupNotOwned { .. }) => outside += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(inside > 0 && outside > 0);
    let scanned: Vec<RawEntry> = all
        .scan("last", range)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(scanned.len(), inside);
    assert!(scanned.iter().all(|e| range.contains(e.key_group)));
    assert!(scanned.windows(2).all(|w| w[0].key_group <= w[1].key_group));
    // retain_key_groups keeps exactly that range.
    all.retain_key_groups(range).unwrap();
    assert_eq!(
        all.scan("last", KeyGroupRange::all(128)).unwrap().count(),
        inside
    );
}

#[test]
fn explicit_expiry_in_a_batch_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(
        dir.path().join("db"),
        StoreOptions::new(vec![
            StateDescriptor::map("m", V1).with_ttl(10, TimeDomain::EventTime)
        ]),
    )
    .unwrap();
    let m = store.map_state_serde::<ImpV1>("m").unwrap();
    let mut batch = StateBatch::new(&store);
    for ts in 0..100i64 {
        m.put_expiring_in(&mut batch, b"k", &keys::ordered(&ts), &imp(ts), ts + 1_000)
            .unwrap();
    }
    batch.commit().unwrap();
    assert_eq!(
        m.entries(b"k").unwrap().len(),
        100,
        "nothing expired at event time MIN"
    );
    store.advance_event_time(1_050);
    let live: Vec<i64> = m
        .entries(b"k")
        .unwrap()
        .into_iter()
        .map(|(_, v)| v.id)
        .collect();
    assert_eq!(
        live,
        (51..100).collect::<Vec<_>>(),
        "entries with expiry <= 1050 are hidden"
    );
    let (lo, hi) = (keys::ordered(&60i64), keys::ordered(&70i64));
    assert_eq!(
        m.range(b"k", Bound::Included(&lo), Bound::Excluded(&hi))
            .unwrap()
            .len(),
        10
    );
    let stateless =
        StateStore::open(dir.path().join("db2"), StoreOptions::new(states(V1))).unwrap();
    let buffer = stateless.map_state_serde::<ImpV1>("buffer").unwrap();
    let mut batch = StateBatch::new(&stateless);
    let err = buffer
        .put_expiring_in(&mut batch, b"k", b"1", &imp(1), 5)
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidInput,
        "no TTL, no explicit expiry: {err}"
    );
}
