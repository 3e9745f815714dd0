//! End-to-end: state written by the library on real RocksDB, checkpointed
//! with state_core::Checkpointer, then the real `savepoint` binary.

use serde_json::{json, Value as Json};
use state_core::checkpoint::{io_runtime, open_job};
use state_core::envelope::{self, Envelope};
use state_core::keys::ordered;
use state_core::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROFILE_V1: &str =
    r#"{"type":"record","name":"Profile","fields":[{"name":"name","type":"string"}]}"#;
const PROFILE_V2: &str = r#"{"type":"record","name":"Profile","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0}]}"#;
const PROFILE_V3: &str = r#"{"type":"record","name":"Profile","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":0},{"name":"city","type":"string","default":"nowhere"}]}"#;
const PROFILE_BAD: &str = r#"{"type":"record","name":"Profile","fields":[{"name":"name","type":"int"},{"name":"age","type":"int","default":0}]}"#;
const IMPRESSION: &str = r#"{"type":"record","name":"Impression","fields":[{"name":"ts","type":"long"},{"name":"title","type":"string"}]}"#;

#[derive(serde::Serialize, serde::Deserialize)]
struct P1 {
    name: String,
}
#[derive(serde::Serialize, serde::Deserialize)]
struct P2 {
    name: String,
    age: i32,
}
#[derive(serde::Serialize, serde::Deserialize)]
struct Imp {
    ts: i64,
    title: String,
}

const PROFILES: i64 = 300;
const PAIRS: i64 = 200;

fn descriptors(profile: &str) -> Vec<StateDescriptor> {
    vec![
        StateDescriptor::value("profiles", profile).with_key_format(KeyFormat::Utf8),
        StateDescriptor::list("events", r#""long""#)
            .with_key_format(KeyFormat::Utf8)
            .with_ttl(1000, TimeDomain::EventTime),
        StateDescriptor::map("impressions", IMPRESSION)
            .with_key_format(KeyFormat::I64Pair)
            .with_user_key_format(KeyFormat::I64),
    ]
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    job: String,
    db: PathBuf,
}

/// Profiles 0..150 written under schema v1, 150..300 under v2; list state
/// with TTL (half expired at event time 5000), map state, timers; three
/// checkpoints (the last holds everything).
fn build(job_url: Option<String>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let job = job_url.unwrap_or_else(|| root.join("job").to_string_lossy().into_owned());
    let db = root.join("db");
    {
        let store = StateStore::open(&db, StoreOptions::new(descriptors(PROFILE_V1))).unwrap();
        let p = store.value_state_serde::<P1>("profiles").unwrap();
        for i in 0..PROFILES / 2 {
            p.put(
                format!("user-{i}").as_bytes(),
                &P1 {
                    name: format!("name-{i}"),
                },
            )
            .unwrap();
        }
        store.flush().unwrap();
    }
    let store = StateStore::open(&db, StoreOptions::new(descriptors(PROFILE_V2))).unwrap();
    let p = store.value_state_serde::<P2>("profiles").unwrap();
    for i in PROFILES / 2..PROFILES {
        p.put(
            format!("user-{i}").as_bytes(),
            &P2 {
                name: format!("name-{i}"),
                age: i as i32,
            },
        )
        .unwrap();
    }
    let ev = store.list_state_serde::<i64>("events").unwrap();
    let imp = store.map_state_serde::<Imp>("impressions").unwrap();
    let rt = io_runtime().unwrap();
    let opts = JobStoreOptions {
        gc_after_commit: false,
        retain: 10,
        ..JobStoreOptions::default()
    };
    let job_store = open_job(&rt, &job, opts).unwrap();
    let mut cp = Checkpointer::start(rt.clone(), job_store, root.join("staging")).unwrap();
    for round in 0..3 {
        // Event time 0 then 4500: the first half of the list elements expire at 1000.
        store.advance_event_time(if round == 0 { 0 } else { 4500 });
        for i in 0..100 {
            if round == 0 || i % 2 == 0 {
                ev.add(format!("k{i}").as_bytes(), &(i * 10 + round))
                    .unwrap();
            }
        }
        for a in 0..PAIRS {
            let key = ordered(&(a, a % 7));
            imp.put(
                &key,
                &ordered(&(round)),
                &Imp {
                    ts: round,
                    title: format!("t{a}"),
                },
            )
            .unwrap();
        }
        for i in 0..20 {
            store
                .timers()
                .register(format!("user-{i}").as_bytes(), 10_000 + i + round * 100)
                .unwrap();
        }
        cp.trigger(
            &store,
            json!({"offsets": {"impressions": 1000 * (round + 1)}, "watermark": 4500}),
        )
        .unwrap()
        .unwrap();
        cp.wait_next().unwrap().result.unwrap();
    }
    drop(cp);
    drop(store);
    Fixture {
        _dir: dir,
        root,
        job,
        db,
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_savepoint"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?} failed: {err}\n{out}");
    out
}

fn ok_json(args: &[&str]) -> Json {
    let mut a = args.to_vec();
    a.extend(["--output", "json"]);
    serde_json::from_str(&ok(&a)).unwrap()
}

/// Refused with exit 2 and a one-line error containing `needle`.
fn refused(args: &[&str], needle: &str) {
    let (code, out, err) = run(args);
    assert_eq!(
        code, 2,
        "{args:?}: expected exit 2, got {code}: {err} {out}"
    );
    assert!(out.is_empty(), "{args:?}: printed output on failure: {out}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {err}");
    assert!(err.contains(needle), "{args:?}: '{needle}' not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn dump(sp: &str, state: &str) -> Vec<Json> {
    ok(&["dump", sp, "--state", state])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

type Contents = BTreeMap<(String, u16, Vec<u8>, Vec<u8>), Vec<(Option<i64>, Vec<u8>)>>;

/// Every entry of a store as (state, kg, key, user key) -> values in the
/// current schema with their expiries: independent of envelope versions.
fn contents(store: &StateStore, range: KeyGroupRange) -> Contents {
    let mut out = BTreeMap::new();
    for meta in store.states() {
        let name = meta.descriptor.name.clone();
        for e in store.scan(&name, range).unwrap() {
            let e = e.unwrap();
            let envs: Vec<Envelope<'_>> = if meta.descriptor.kind == StateKind::List {
                envelope::list_elements(&e.value)
                    .map(|x| x.unwrap())
                    .collect()
            } else {
                vec![Envelope::parse(&e.value).unwrap()]
            };
            let vals = envs
                .iter()
                .map(|env| {
                    (
                        env.expiry_ms,
                        store
                            .to_current_avro(&name, env.schema_version, env.payload)
                            .unwrap(),
                    )
                })
                .collect();
            out.insert((name.clone(), e.key_group, e.key, e.user_key), vals);
        }
    }
    out
}

#[test]
fn end_to_end_on_a_folder() {
    let f = build(None);
    end_to_end(&f, &s(&f.root.join("sp")));
}

#[test]
fn end_to_end_on_s3() {
    let Ok(endpoint) = std::env::var("S3_TEST_ENDPOINT") else {
        eprintln!("skipped: S3_TEST_ENDPOINT unset");
        return;
    };
    let bucket = format!("savepoint-cli-{}", std::process::id());
    let status = Command::new("python3")
        .args(["-c", &format!("import urllib.request as u; u.urlopen(u.Request('{endpoint}/{bucket}', method='PUT'))")])
        .status()
        .unwrap();
    assert!(status.success());
    let f = build(Some(format!("s3://{bucket}/jobs/join")));
    end_to_end(&f, &format!("s3://{bucket}/savepoints/sp"));
}

fn end_to_end(f: &Fixture, sp: &str) {
    let root = &f.root;
    let job = f.job.as_str();

    // ls: three complete checkpoints (plus the fence of the writer).
    let ls = ok_json(&["ls", job]);
    let complete: Vec<&Json> = ls["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["complete"] == json!(true))
        .collect();
    assert_eq!(complete.len(), 3, "{ls}");

    // inspect a checkpoint: manifest only, then deep.
    let insp = ok_json(&["inspect", job]);
    assert_eq!(insp["type"], "checkpoint");
    assert_eq!(insp["user"]["offsets"]["impressions"], 3000);
    // The default layout: sorted runs, at least the first checkpoint's slice.
    assert_eq!(insp["layout"]["version"], 2, "{}", insp["layout"]);
    assert!(insp["layout"]["slices"].as_u64().unwrap() >= 1);
    let profiles = insp["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "profiles")
        .unwrap();
    assert_eq!(profiles["schema_versions"], 2);
    assert!(
        profiles.get("entries").is_none(),
        "metadata-only inspect must not scan"
    );
    let deep = ok_json(&["inspect", job, "--deep", "--now", "4500"]);
    let profiles = deep["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "profiles")
        .unwrap();
    assert_eq!(profiles["entries"], PROFILES);
    assert_eq!(
        profiles["values_by_version"],
        json!({"v1": PROFILES / 2, "v2": PROFILES / 2})
    );
    let events = deep["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "events")
        .unwrap();
    assert_eq!(events["entries"], 100);
    // Odd keys only got elements at event time 0 (expiry 1000): expired at 4500.
    assert_eq!(events["expired"], 50);

    // create
    let created = ok_json(&["create", job, "--checkpoint", "latest", "--to", sp]);
    assert_eq!(created["entries"], PROFILES + 100 + PAIRS * 3);
    assert_eq!(created["timers"], 60);
    refused(&["create", job, "--to", sp], "already exists");

    // inspect the savepoint (metadata only)
    let insp = ok_json(&["inspect", sp]);
    assert_eq!(insp["type"], "savepoint");
    assert_eq!(insp["user"]["watermark"], 4500);
    let by_state: BTreeMap<String, &Json> = insp["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["state"].as_str().unwrap().to_string(), s))
        .collect();
    assert_eq!(by_state["profiles"]["entries"], PROFILES);
    assert_eq!(by_state["impressions"]["entries"], PAIRS * 3);
    assert_eq!(by_state["events"]["kind"], "list");

    // dump: v1 values resolved to v2 (age defaulted), v2 values as written
    let rows = dump(sp, "profiles");
    assert_eq!(rows.len() as i64, PROFILES);
    let row = |k: &str| rows.iter().find(|r| r["key"] == k).unwrap().clone();
    assert_eq!(row("user-3")["value"], json!({"name": "name-3", "age": 0}));
    assert_eq!(
        row("user-200")["value"],
        json!({"name": "name-200", "age": 200})
    );
    let got = ok_json(&[
        "get",
        sp,
        "--state",
        "impressions",
        "--key",
        "12,5",
        "--user-key",
        "2",
    ]);
    assert_eq!(got[0]["value"], json!({"ts": 2, "title": "t12"}));
    assert_eq!(got[0]["key"], json!([12, 5]));
    let ev = dump(sp, "events");
    let k1 = ev.iter().find(|r| r["key"] == "k1").unwrap();
    assert_eq!(k1["value"], json!([10]));
    assert_eq!(k1["element_expiry_ms"], json!([1000]));
    let lim = ok(&["dump", sp, "--state", "impressions", "--limit", "5"]);
    assert_eq!(lim.lines().count(), 5);

    // restore at parallelism 2: each half equals the original's key groups
    let original = StateStore::open(&f.db, StoreOptions::new(descriptors(PROFILE_V2))).unwrap();
    let mut total = 0;
    for i in 0..2u16 {
        let dir = root.join(format!("restored-{i}"));
        ok(&[
            "restore",
            sp,
            "--to",
            &s(&dir),
            "--parallelism",
            "2",
            "--index",
            &i.to_string(),
        ]);
        let range = KeyGroupRange::for_operator(128, 2, i).unwrap();
        let restored = StateStore::open(
            &dir,
            StoreOptions::new(descriptors(PROFILE_V2)).with_key_groups(range),
        )
        .unwrap();
        let want = contents(&original, range);
        assert_eq!(contents(&restored, range), want, "instance {i}");
        total += want.len();
        let timers = restored.timers().all().unwrap();
        assert!(timers.iter().all(|t| range.contains(t.key_group)));
    }
    assert_eq!(total as i64, PROFILES + 100 + PAIRS * 3);
    // restore from the checkpoint itself
    let from_chk = root.join("restored-chk");
    ok(&[
        "restore",
        job,
        "--checkpoint",
        "latest",
        "--to",
        &s(&from_chk),
    ]);
    let r = StateStore::open(&from_chk, StoreOptions::new(descriptors(PROFILE_V2))).unwrap();
    assert_eq!(
        contents(&r, KeyGroupRange::all(128)),
        contents(&original, KeyGroupRange::all(128))
    );
    drop(r);
    refused(
        &["restore", sp, "--to", &s(&from_chk)],
        "not an empty folder",
    );

    // rescale: same key groups split in 3; then a new max parallelism
    let sp3 = format!("{sp}-p3");
    let r3 = ok_json(&["rescale", sp, "--parallelism", "3", "--to", &sp3]);
    assert_eq!(r3["layout"]["parallelism"], 3);
    assert_eq!(dump(&sp3, "impressions").len() as i64, PAIRS * 3);
    let sp256 = format!("{sp}-m256");
    let r256 = ok_json(&[
        "rescale",
        sp,
        "--parallelism",
        "2",
        "--max-parallelism",
        "256",
        "--to",
        &sp256,
    ]);
    assert_eq!(r256["max_parallelism"], 256);
    assert_eq!(r256["entries"], created["entries"]);
    let d256 = dump(&sp256, "profiles");
    let r = d256.iter().find(|r| r["key"] == "user-7").unwrap();
    assert_eq!(r["key_group"], key_group_of(b"user-7", 256));
    assert_eq!(r["value"], json!({"name": "name-7", "age": 0}));
    let dir = root.join("restored-256");
    ok(&[
        "restore",
        &sp256,
        "--to",
        &s(&dir),
        "--parallelism",
        "2",
        "--index",
        "1",
    ]);
    let range = KeyGroupRange::for_operator(256, 2, 1).unwrap();
    let st = StateStore::open(
        &dir,
        StoreOptions::new(descriptors(PROFILE_V2))
            .with_max_parallelism(256)
            .with_key_groups(range),
    )
    .unwrap();
    let n = st.scan("profiles", range).unwrap().count();
    assert!(n > 0 && (n as i64) < PROFILES, "{n}");
    drop(st);

    // migrate: accepted change
    let v3 = root.join("v3.avsc");
    std::fs::write(&v3, PROFILE_V3).unwrap();
    let dry = ok_json(&[
        "migrate",
        sp,
        "--state",
        "profiles",
        "--schema",
        &s(&v3),
        "--dry-run",
    ]);
    assert_eq!(dry["compatible"], true);
    assert_eq!(dry["fields"][0]["field"], "city");
    assert_eq!(dry["fields"][0]["change"], "defaulted");
    let spv3 = format!("{sp}-v3");
    let m = ok_json(&[
        "migrate",
        sp,
        "--state",
        "profiles",
        "--schema",
        &s(&v3),
        "--to",
        &spv3,
    ]);
    assert_eq!(m["rewritten"], PROFILES);
    let rows = dump(&spv3, "profiles");
    let r = rows.iter().find(|r| r["key"] == "user-200").unwrap();
    assert_eq!(
        r["value"],
        json!({"name": "name-200", "age": 200, "city": "nowhere"})
    );
    // refused change: exit 1, rule and path, no target
    let bad = root.join("bad.avsc");
    std::fs::write(&bad, PROFILE_BAD).unwrap();
    let spbad = format!("{sp}-bad");
    let (code, out, _) = run(&[
        "migrate",
        sp,
        "--state",
        "profiles",
        "--schema",
        &s(&bad),
        "--to",
        &spbad,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("TYPE_MISMATCH") && out.contains("/fields/0/type"),
        "{out}"
    );
    refused(&["inspect", &spbad], "");

    // compact with dropped expiries
    let spc = format!("{sp}-compact");
    ok(&[
        "compact",
        sp,
        "--to",
        &spc,
        "--drop-expired",
        "--now",
        "4500",
    ]);
    let ev = dump(&spc, "events");
    assert_eq!(ev.len(), 50, "odd keys had only expired elements");
    let k2 = ev.iter().find(|r| r["key"] == "k2").unwrap();
    assert_eq!(
        k2["value"],
        json!([21, 22]),
        "the element written at event time 0 is gone"
    );
    let spcc = format!("{sp}-compact-chk");
    ok(&[
        "compact",
        job,
        "--to",
        &spcc,
        "--drop-expired",
        "--now",
        "4500",
    ]);
    assert_eq!(dump(&spcc, "events").len(), 50);

    // verify, diff
    let v = ok_json(&["verify", sp]);
    assert_eq!(v["ok"], true);
    assert_eq!(ok_json(&["verify", job])["ok"], true);
    let d = ok_json(&["diff", sp, &format!("{sp}-p3")]);
    assert_eq!(d["identical"], true);
    let (code, out, _) = run(&["diff", sp, &spv3, "--output", "json"]);
    assert_eq!(code, 1);
    let d: Json = serde_json::from_str(&out).unwrap();
    let p = d["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "profiles")
        .unwrap();
    assert_eq!(p["changed"], PROFILES);
    assert_eq!(p["examples"][0]["after"]["city"], "nowhere");
    let (code, out, _) = run(&["diff", sp, &spc, "--output", "json"]);
    assert_eq!(code, 1);
    let d: Json = serde_json::from_str(&out).unwrap();
    let e = d["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "events")
        .unwrap();
    assert_eq!(e["removed"], 50);
    // Even keys lost their element written at event time 0.
    assert_eq!(e["changed"], 50);

    // bad input
    refused(
        &["dump", sp, "--state", "nope"],
        "state 'nope' is not in this savepoint",
    );
    let garbage = root.join("garbage.avsc");
    std::fs::write(&garbage, "{not avro").unwrap();
    refused(
        &[
            "migrate",
            sp,
            "--state",
            "profiles",
            "--schema",
            &s(&garbage),
            "--to",
            &format!("{sp}-g"),
        ],
        "not valid Avro",
    );
    refused(
        &[
            "migrate",
            sp,
            "--state",
            "profiles",
            "--schema",
            &s(&v3),
            "--to",
            &spv3,
        ],
        "already exists",
    );
}

#[test]
fn verify_names_a_bit_flipped_file_and_gc_is_dry_by_default() {
    let f = build(None);
    let sp = f.root.join("sp");
    ok(&["create", &f.job, "--to", &s(&sp)]);
    let file = std::fs::read_dir(sp.join("states/profiles"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();
    let (code, out, _) = run(&["verify", &s(&sp)]);
    assert_eq!(code, 1, "{out}");
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(out.contains(&name) && out.contains("checksum"), "{out}");
    refused(&["dump", &s(&sp), "--state", "profiles"], &name);
    // truncated file
    std::fs::write(&file, &bytes[..mid]).unwrap();
    let (code, out, _) = run(&["verify", &s(&sp)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&name), "{out}");

    // gc: dry run changes nothing, --confirm deletes the older checkpoints
    let before = ok_json(&["ls", &f.job]);
    let dry = ok_json(&["gc", &f.job, "--retain", "1", "--older-than", "0s"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["expired_checkpoints"].as_array().unwrap().len(), 2);
    assert_eq!(ok_json(&["ls", &f.job]), before);
    let done = ok_json(&[
        "gc",
        &f.job,
        "--retain",
        "1",
        "--older-than",
        "0s",
        "--confirm",
    ]);
    assert_eq!(done["dry_run"], false);
    let after = ok_json(&["ls", &f.job]);
    let complete = after["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["complete"] == json!(true))
        .count();
    assert_eq!(complete, 1);
    ok(&["inspect", &f.job, "--deep"]);
}

#[test]
fn bad_sources_and_targets_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    refused(&["inspect", &s(&empty)], "neither a savepoint nor a job");
    refused(
        &["verify", &s(&dir.path().join("absent"))],
        "does not exist",
    );
    assert!(
        !dir.path().join("absent").exists(),
        "reading must not create folders"
    );
    std::fs::write(empty.join("_metadata.json"), b"{\"format_version\": 7}").unwrap();
    refused(&["inspect", &s(&empty)], "format_version 7");
    std::fs::write(empty.join("_metadata.json"), b"{trunc").unwrap();
    refused(&["dump", &s(&empty), "--state", "x"], "_metadata.json");
    let (code, _, err) = run(&["dump"]);
    assert_eq!(code, 2, "{err}");
    // unreachable object store
    let out = Command::new(env!("CARGO_BIN_EXE_savepoint"))
        .args(["inspect", "s3://nobucket/x"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn standard_avro_tools_read_savepoint_files() {
    // fastavro reads zstandard blocks through backports.zstd (Python < 3.14).
    let probe = "import fastavro\ntry:\n import backports.zstd\nexcept ImportError:\n from compression import zstd";
    let have = Command::new("python3")
        .args(["-c", probe])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        eprintln!("skipped: python3 fastavro with zstd not installed (pip install fastavro backports.zstd)");
        return;
    }
    let f = build(None);
    let sp = f.root.join("sp");
    ok(&["create", &f.job, "--to", &s(&sp)]);
    let script = r#"
import fastavro, glob, json, sys
rows = []
for p in sorted(glob.glob(sys.argv[1] + '/states/profiles/*.avro')):
    with open(p, 'rb') as fh:
        r = fastavro.reader(fh)
        assert r.codec == 'zstandard', r.codec
        rows.extend(r)
by = {row['key'].decode(): row['value'] for row in rows}
print(json.dumps({'n': len(rows), 'u3': by['user-3'], 'u200': by['user-200']}))
ev = []
for p in glob.glob(sys.argv[1] + '/states/events/*.avro'):
    with open(p, 'rb') as fh:
        ev.extend(fastavro.reader(fh))
assert any(e['key'] == b'k1' and e['value'] == [10] and e['element_expiry_ms'] == [1000] for e in ev)
with open(sys.argv[1] + '/timers.avro', 'rb') as fh:
    assert len(list(fastavro.reader(fh))) == 60
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s(&sp)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["n"], PROFILES);
    assert_eq!(j["u3"], json!({"name": "name-3", "age": 0}));
    assert_eq!(j["u200"], json!({"name": "name-200", "age": 200}));
}

/// Writes the fixture job to $SAVEPOINT_DEMO_DIR/job for trying the
/// command by hand (docs/operations.md examples): `cargo test -- --ignored demo`.
#[test]
#[ignore]
fn demo_job() {
    let Ok(dir) = std::env::var("SAVEPOINT_DEMO_DIR") else {
        eprintln!("skipped: SAVEPOINT_DEMO_DIR unset");
        return;
    };
    let job = Path::new(&dir).join("job");
    let f = build(Some(s(&job)));
    drop(f);
    assert!(job.join("checkpoints").is_dir());
}
