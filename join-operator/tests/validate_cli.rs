//! `stream-join gen` and `stream-join validate` as scripts use them: exit
//! codes and reports for equal output, missing, extra and duplicated rows,
//! late events, and bad input.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use join_operator::event::{JoinedRow, LateEvent};
use join_operator::oracle::{self, OracleConfig};
use join_operator::sink::TxnSink;

fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stream-join"))
        .args(args)
        .output()
        .unwrap()
}

fn gen(dir: &Path, late_fraction: &str) {
    let out = bin(&[
        "gen",
        "--seed",
        "11",
        "--impressions",
        "4000",
        "--plays",
        "800",
        "--late-fraction",
        late_fraction,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes rows and late events as committed output, as the job would.
fn write_output(out: &Path, rows: &[JoinedRow], late: &[LateEvent]) {
    let mut s = TxnSink::open(out, 0, &JoinedRow::header_line(), None).unwrap();
    for r in rows {
        s.write(r).unwrap();
    }
    let st = s.pre_commit(1).unwrap();
    s.commit(&st).unwrap();
    let mut l = TxnSink::open(&out.join("late"), 0, &LateEvent::header_line(), None).unwrap();
    for e in late {
        l.write(e).unwrap();
    }
    let st = l.pre_commit(1).unwrap();
    l.commit(&st).unwrap();
}

trait HeaderLine {
    fn header_line() -> String;
}
impl<T: join_operator::event::CsvRecord> HeaderLine for T {
    fn header_line() -> String {
        T::header()
    }
}

fn validate(input: &Path, out: &Path) -> (i32, serde_json::Value, String) {
    let o = bin(&[
        "validate",
        "--json",
        "--impressions",
        input.join("impressions.csv").to_str().unwrap(),
        "--plays",
        input.join("plays.csv").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap(),
        json,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn equal_output_passes_and_each_difference_is_reported() {
    let input = tempfile::tempdir().unwrap();
    gen(input.path(), "0");
    let r = oracle::run(
        &input.path().join("impressions.csv"),
        &input.path().join("plays.csv"),
        OracleConfig::default(),
    )
    .unwrap();
    assert!(r.expected.len() > 500);

    let good = tempfile::tempdir().unwrap();
    write_output(good.path(), &r.expected, &[]);
    let (code, json, err) = validate(input.path(), good.path());
    assert_eq!(code, 0, "{json} {err}");
    assert_eq!(json["equal"], true);
    assert_eq!(json["rows"]["found"], r.expected.len() as u64);

    // Drop row 0, duplicate row 1, add a row nobody expects.
    let mut rows = r.expected[1..].to_vec();
    rows.push(r.expected[1]);
    let mut stranger = r.expected[2];
    stranger.impression_id = -5;
    rows.push(stranger);
    let bad = tempfile::tempdir().unwrap();
    write_output(bad.path(), &rows, &[]);
    let (code, json, _) = validate(input.path(), bad.path());
    assert_eq!(code, 1, "{json}");
    assert_eq!(json["equal"], false);
    assert_eq!(json["rows"]["missing"], 1);
    assert_eq!(json["rows"]["extra"], 1);
    assert_eq!(json["rows"]["duplicated"], 1);
    assert_eq!(
        json["rows"]["missing_list"][0]["value"]["play_id"],
        r.expected[0].play_id
    );
    assert_eq!(json["rows"]["extra_list"][0]["value"]["impression_id"], -5);
    assert_eq!(json["rows"]["duplicated_list"][0]["found"], 2);

    // The table form says the same.
    let o = bin(&[
        "validate",
        "--impressions",
        input.path().join("impressions.csv").to_str().unwrap(),
        "--plays",
        input.path().join("plays.csv").to_str().unwrap(),
        "--output",
        bad.path().to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        table.contains("DIFFERENT")
            && table.contains("missing row")
            && table.contains("duplicated row"),
        "{table}"
    );
}

#[test]
fn late_events_are_checked_against_the_side_output() {
    let input = tempfile::tempdir().unwrap();
    gen(input.path(), "0.02");
    let r = oracle::run(
        &input.path().join("impressions.csv"),
        &input.path().join("plays.csv"),
        OracleConfig::default(),
    )
    .unwrap();
    assert!(r.late_events.len() > 40 && !r.late_rows.is_empty());

    let good = tempfile::tempdir().unwrap();
    write_output(good.path(), &r.expected, &r.late_events);
    let (code, json, _) = validate(input.path(), good.path());
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["rows_of_late_events"], r.late_rows.len() as u64);

    // A job that joined a late event and forgot to report it.
    let mut rows = r.expected.clone();
    rows.push(r.late_rows[0]);
    let bad = tempfile::tempdir().unwrap();
    write_output(bad.path(), &rows, &r.late_events[1..]);
    let (code, json, _) = validate(input.path(), bad.path());
    assert_eq!(code, 1);
    assert_eq!(json["rows"]["extra"], 1);
    assert_eq!(json["extra_rows_of_late_events"], 1);
    assert_eq!(json["late"]["missing"], 1);
    assert_eq!(
        json["late"]["missing_list"][0]["value"]["event_id"],
        r.late_events[0].event_id
    );
}

#[test]
fn input_errors_exit_2_with_one_clear_line() {
    let input = tempfile::tempdir().unwrap();
    gen(input.path(), "0");
    let (code, _, err) = validate(input.path(), &input.path().join("no-such-dir"));
    assert_eq!(code, 2);
    assert!(
        err.contains("no-such-dir") && err.lines().count() == 1,
        "{err}"
    );

    let out = tempfile::tempdir().unwrap();
    fs::write(
        out.path().join("part-0.csv"),
        "play_id,impression_id\n1,2\n",
    )
    .unwrap();
    let (code, _, err) = validate(input.path(), out.path());
    assert_eq!(code, 2);
    assert!(
        err.contains("part-0.csv") && err.contains("expected \"play_id,impression_id,profile_id"),
        "{err}"
    );

    let o = bin(&[
        "gen",
        "--impressions",
        "10",
        "--plays",
        "100",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--plays 100"));

    let missing = out.path().join("missing-impressions.csv");
    let run_out = out.path().join("run-out");
    let checkpoints = out.path().join("run-checkpoints");
    let o = bin(&[
        "run",
        "--impressions",
        missing.to_str().unwrap(),
        "--plays",
        "b",
        "--output",
        run_out.to_str().unwrap(),
        "--checkpoints",
        checkpoints.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing-impressions.csv"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn hidden_work_in_progress_never_counts() {
    let input = tempfile::tempdir().unwrap();
    gen(input.path(), "0");
    let r = oracle::run(
        &input.path().join("impressions.csv"),
        &input.path().join("plays.csv"),
        OracleConfig::default(),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    write_output(out.path(), &r.expected, &[]);
    let mut s = TxnSink::open(out.path(), 1, &JoinedRow::header_line(), None).unwrap();
    s.write(&r.expected[0]).unwrap();
    let _uncommitted = s.pre_commit(2).unwrap();
    drop(s);
    let (code, json, _) = validate(input.path(), out.path());
    assert_eq!(code, 0, "{json}");
}
