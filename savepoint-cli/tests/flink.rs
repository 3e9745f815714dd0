//! The `savepoint` binary on real Apache Flink savepoints and checkpoints
//! (flink-state/tests/fixtures/flink, with Flink's own dump as ground truth).

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../flink-state/tests/fixtures/flink")
}

fn only_dir(p: &Path) -> PathBuf {
    std::fs::read_dir(p)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

fn savepoint(fixture: &str, kind: &str) -> String {
    only_dir(&fixtures().join(fixture).join(kind))
        .display()
        .to_string()
}

/// The job's checkpoint folder (holding chk-N).
fn job_folder(fixture: &str) -> String {
    only_dir(&fixtures().join(fixture).join("checkpoints"))
        .display()
        .to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let work = std::env::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_savepoint"))
        .args(args)
        .env("SAVEPOINT_WORK_DIR", &work)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(stdout: &str) -> Vec<Json> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Our dump of every state of the fixture's keyed and source operators,
/// cut to the ground truth's fields, equals the ground truth as a multiset.
fn assert_dump_matches(src: &str, gt: &Path) {
    let gt_text = std::fs::read_to_string(gt).unwrap();
    let mut want: Vec<String> = gt_text
        .lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap().to_string())
        .collect();
    let mut got = Vec::new();
    let states = [
        ("keyed-avro-state", "last-impression"),
        ("keyed-avro-state", "titles-by-ts"),
        ("keyed-avro-state", "timestamps"),
        ("keyed-avro-state", "count"),
        ("keyed-avro-state", "last-title-ttl"),
        ("keyed-avro-state", "_timer_state/event_user-timers"),
        ("keyed-avro-state", "_timer_state/processing_user-timers"),
        ("window-agg", "window-contents"),
        ("window-agg", "_timer_state/event_window-timers"),
        ("window-agg", "_timer_state/processing_window-timers"),
        ("impression-source", "emitted-offset"),
    ];
    for (op, state) in states {
        let (code, out, err) = run(&["dump", src, "--operator", op, "--state", state]);
        assert_eq!(code, 0, "{op}/{state}: {err}");
        for mut l in lines(&out) {
            let o = l.as_object_mut().unwrap();
            o.remove("ttl_timestamp");
            o.remove("mode");
            got.push(l.to_string());
        }
    }
    want.sort();
    got.sort();
    assert_eq!(got.len(), want.len(), "{src}");
    assert!(got == want, "{src}: dump differs from {}", gt.display());
}

#[test]
fn dump_of_every_fixture_equals_flinks_own_dump() {
    for f in ["A-p1", "A-p1-noinline", "A-p2"] {
        let root = fixtures().join(f);
        assert_dump_matches(
            &savepoint(f, "savepoint-canonical"),
            &root.join("gt-canonical.jsonl"),
        );
        assert_dump_matches(
            &savepoint(f, "savepoint-native"),
            &root.join("gt-native.jsonl"),
        );
        assert_dump_matches(&job_folder(f), &root.join("gt-checkpoint.jsonl"));
    }
    let b = fixtures().join("B-evolved-hashmap-all");
    assert_dump_matches(
        &savepoint("B-evolved-hashmap-all", "savepoint-canonical"),
        &b.join("gt-canonical.jsonl"),
    );
    let chk = only_dir(&b.join("checkpoints"))
        .join("chk-6")
        .display()
        .to_string();
    assert_dump_matches(&chk, &b.join("gt-checkpoint.jsonl"));
}

#[test]
fn inspect_names_operators_and_states_and_ls_lists_checkpoints() {
    let (code, out, err) = run(&["inspect", &savepoint("A-p2", "savepoint-native")]);
    assert_eq!(code, 0, "{err}");
    for name in [
        "keyed-avro-state",
        "window-agg",
        "impression-source",
        "discard-1",
        "last-impression",
        "titles-by-ts",
        "_timer_state/event_window-timers",
        "emitted-offset",
        "Avro GenericRecord",
        "TTL",
    ] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
    let (code, out, _) = run(&[
        "inspect",
        &savepoint("A-p1", "savepoint-canonical"),
        "--deep",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let j: Json = serde_json::from_str(&out).unwrap();
    let op = j["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uid"] == "keyed-avro-state")
        .unwrap();
    assert_eq!(op["keyed_states"][0]["entries"], 50);
    let (code, out, err) = run(&["ls", &job_folder("A-p1")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("incremental checkpoint"), "{out}");
}

#[test]
fn get_finds_one_key_and_one_map_entry() {
    let sp = savepoint("A-p1", "savepoint-canonical");
    let (code, out, err) = run(&["get", &sp, "--state", "count", "--key", "user-014"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out)[0]["value"], 40);
    let (code, out, err) = run(&[
        "get",
        &sp,
        "--state",
        "titles-by-ts",
        "--key",
        "user-014",
        "--user-key",
        "1700000002000",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out)[0]["value"][0], 1_700_000_002_000i64);
    let (code, _, err) = run(&["get", &sp, "--state", "count", "--key", "nobody"]);
    assert_eq!(code, 2);
    assert!(err.contains("no entry"), "{err}");
}

#[test]
fn sql_interval_join_rows_dump_as_json() {
    let sp = savepoint("C-sql-interval-join", "savepoint-canonical");
    let (code, out, err) = run(&[
        "dump",
        &sp,
        "--state",
        "IntervalJoinLeftCache",
        "--limit",
        "5",
    ]);
    assert_eq!(code, 0, "{err}");
    let l = lines(&out);
    assert_eq!(l.len(), 5);
    assert!(l[0]["key"]["f0"].as_str().unwrap().starts_with("u-"));
    let plan = fixtures().join("C-sql-interval-join/plan.txt");
    let (code, out, err) = run(&[
        "dump",
        &sp,
        "--state",
        "IntervalJoinLeftCache",
        "--limit",
        "1",
        "--sql-plan",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let l = lines(&out);
    assert!(l[0]["key"]["user_id"].is_string(), "{out}");
    assert!(
        l[0]["value"][0][1][0][0]["imp_id"]
            .as_str()
            .unwrap()
            .starts_with("imp-"),
        "{out}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::write(to.join(e.file_name()), std::fs::read(e.path()).unwrap()).unwrap();
    }
}

#[test]
fn verify_names_the_damaged_file() {
    let (code, out, err) = run(&["verify", &savepoint("A-p1-noinline", "savepoint-canonical")]);
    assert_eq!(code, 0, "{out}{err}");
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().join("sp");
    copy_dir(
        Path::new(&savepoint("A-p1-noinline", "savepoint-canonical")),
        &sp,
    );
    let keyed = sp.join("4198412c-6569-4bea-bc70-7bda4e08a4f1");
    let mut b = std::fs::read(&keyed).unwrap();
    b[2834 + 5] ^= 0x5a;
    std::fs::write(&keyed, b).unwrap();
    let (code, out, _) = run(&["verify", sp.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("DAMAGED {}: ", keyed.display())),
        "{out}"
    );
    let sp2 = tmp.path().join("sp2");
    copy_dir(
        Path::new(&savepoint("A-p1-noinline", "savepoint-canonical")),
        &sp2,
    );
    let meta = sp2.join("_metadata");
    let mut b = std::fs::read(&meta).unwrap();
    let n = b.len();
    b[n - 0x60] ^= 0x5a;
    std::fs::write(&meta, b).unwrap();
    let (code, out, _) = run(&["verify", sp2.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("DAMAGED {}: ", meta.display())),
        "{out}"
    );
}

/// convert: the Avro state of job A as a toolkit savepoint, dumped and
/// verified, then migrated to the evolved schema (the change Flink 2.2
/// could not make on RocksDB).
#[test]
fn convert_then_dump_verify_and_migrate() {
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("converted");
    let (code, out, err) = run(&[
        "convert",
        &savepoint("A-p1", "savepoint-native"),
        "--operator",
        "keyed-avro-state",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["verify", to.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["dump", to.to_str().unwrap(), "--state", "last-impression"]);
    assert_eq!(code, 0, "{err}");
    let l = lines(&out);
    assert_eq!(l.len(), 50);
    let (code, out, err) = run(&[
        "get",
        to.to_str().unwrap(),
        "--state",
        "count",
        "--key",
        "user-014",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("40"), "{out}");
    let evolved = tmp.path().join("v2.avsc");
    std::fs::write(&evolved, r#"{"type":"record","name":"Impression","namespace":"fx.avro","fields":[{"name":"id","type":"string"},{"name":"user","type":"string"},{"name":"ts","type":"long"},{"name":"title","type":"string"},{"name":"country","type":"string","default":"unknown"}]}"#).unwrap();
    let to2 = tmp.path().join("migrated");
    let (code, out, err) = run(&[
        "migrate",
        to.to_str().unwrap(),
        "--state",
        "last-impression",
        "--schema",
        evolved.to_str().unwrap(),
        "--to",
        to2.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "dump",
        to2.to_str().unwrap(),
        "--state",
        "last-impression",
        "--limit",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"country\":\"unknown\""), "{out}");
}

/// A Kryo-serialized state (written by the format writer): dumping it
/// names operator, state and class; the other states stay readable.
#[test]
fn unknown_serializer_is_named_and_the_rest_stays_readable() {
    use flink_state::writer::{write_canonical_savepoint, SyntheticSpec};
    let tmp = tempfile::tempdir().unwrap();
    let sp = tmp.path().join("sp");
    write_canonical_savepoint(
        &sp,
        &SyntheticSpec {
            keys: 20,
            kryo_state: true,
            ..Default::default()
        },
    )
    .unwrap();
    let sp = sp.to_str().unwrap();
    let (code, _, err) = run(&["dump", sp, "--state", "opaque"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("operator synthetic")
            && err.contains("state opaque")
            && err.contains("KryoSerializerSnapshot"),
        "{err}"
    );
    let (code, out, err) = run(&["dump", sp, "--state", "count"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out).len(), 20);
    let (code, out, _) = run(&["inspect", sp]);
    assert_eq!(code, 0);
    assert!(
        out.contains("UNREADABLE: unknown serializer") && out.contains("KryoSerializerSnapshot"),
        "{out}"
    );
}
