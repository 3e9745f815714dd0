//! The transactional sink under simulated crashes: only rows of completed
//! checkpoints are committed, each exactly once.

use std::fs;
use std::path::Path;

use join_operator::event::{CsvRecord, JoinedRow};
use join_operator::sink::{recover_all, SinkError, SinkOptions, TxnSink, INPROGRESS_DIR};
use join_operator::validate::read_committed;

fn r(n: i64) -> JoinedRow {
    JoinedRow {
        play_id: n,
        impression_id: n + 1000,
        profile_id: 1,
        title_id: 2,
        play_ts_ms: n,
        impression_ts_ms: n,
    }
}

fn header() -> String {
    JoinedRow::header()
}

fn open(dir: &Path, instance: u32, state: Option<&join_operator::sink::SinkState>) -> TxnSink {
    TxnSink::open(dir, instance, &header(), state).unwrap()
}

fn committed(dir: &Path) -> Vec<i64> {
    let (rows, _) = read_committed::<JoinedRow>(dir).unwrap();
    let mut ids: Vec<i64> = rows.iter().map(|r| r.play_id).collect();
    ids.sort_unstable();
    ids
}

fn csv_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".csv"))
        .collect();
    v.sort();
    v
}

fn inprogress_count(dir: &Path) -> usize {
    fs::read_dir(dir.join(INPROGRESS_DIR)).unwrap().count()
}

#[test]
fn commit_publishes_whole_files_with_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 3, None);
    for i in 0..5 {
        s.write(&r(i)).unwrap();
    }
    assert!(
        csv_names(dir.path()).is_empty(),
        "nothing visible before commit"
    );
    let st = s.pre_commit(7).unwrap();
    assert!(
        csv_names(dir.path()).is_empty(),
        "nothing visible before commit"
    );
    s.commit(&st).unwrap();
    assert_eq!(csv_names(dir.path()), ["part-3-00000007-0.csv"]);
    let text = fs::read_to_string(dir.path().join("part-3-00000007-0.csv")).unwrap();
    assert!(text.starts_with(&format!("{}\n", header())));
    assert!(text.ends_with('\n'));
    assert_eq!(committed(dir.path()), [0, 1, 2, 3, 4]);
    // A checkpoint without new rows publishes no empty file.
    let st = s.pre_commit(8).unwrap();
    assert!(st.pending.is_empty());
    s.commit(&st).unwrap();
    assert_eq!(csv_names(dir.path()).len(), 1);
}

#[test]
fn crash_after_an_incomplete_checkpoint_keeps_only_the_completed_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 0, None);
    s.write(&r(1)).unwrap();
    let s1 = s.pre_commit(1).unwrap();
    s.commit(&s1).unwrap();
    s.write(&r(2)).unwrap();
    let _s2 = s.pre_commit(2).unwrap(); // checkpoint 2 never completes
    s.write(&r(3)).unwrap();
    drop(s); // crash
    assert!(inprogress_count(dir.path()) >= 2);

    let mut s = open(dir.path(), 0, Some(&s1));
    assert_eq!(committed(dir.path()), [1]);
    assert_eq!(
        inprogress_count(dir.path()),
        0,
        "rows after checkpoint 1 discarded"
    );
    // Replay produces them again.
    s.write(&r(2)).unwrap();
    s.write(&r(3)).unwrap();
    let s2 = s.pre_commit(2).unwrap();
    s.commit(&s2).unwrap();
    assert_eq!(committed(dir.path()), [1, 2, 3]);
}

#[test]
fn crash_between_checkpoint_and_rename_recommits_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 0, None);
    s.write(&r(1)).unwrap();
    s.write(&r(2)).unwrap();
    let s1 = s.pre_commit(1).unwrap();
    s.write(&r(3)).unwrap();
    drop(s); // checkpoint 1 durable, commit never ran
    assert_eq!(committed(dir.path()), Vec::<i64>::new());

    let s = open(dir.path(), 0, Some(&s1));
    assert_eq!(committed(dir.path()), [1, 2]);
    drop(s);
    // Recovering again from the same state (a second crash) changes nothing.
    let mut s = open(dir.path(), 0, Some(&s1));
    s.commit(&s1).unwrap();
    assert_eq!(committed(dir.path()), [1, 2]);
    assert_eq!(csv_names(dir.path()), ["part-0-00000001-0.csv"]);
}

#[test]
fn pending_files_of_an_earlier_uncommitted_checkpoint_ride_along() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 0, None);
    s.write(&r(1)).unwrap();
    let _s1 = s.pre_commit(1).unwrap(); // its commit notification is lost
    s.write(&r(2)).unwrap();
    let s2 = s.pre_commit(2).unwrap();
    assert_eq!(s2.pending.len(), 2);
    drop(s);
    let _s = open(dir.path(), 0, Some(&s2));
    assert_eq!(committed(dir.path()), [1, 2]);
    assert_eq!(
        csv_names(dir.path()),
        ["part-0-00000001-0.csv", "part-0-00000002-0.csv"]
    );
}

#[test]
fn a_lost_pending_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = open(dir.path(), 0, None);
    s.write(&r(1)).unwrap();
    let s1 = s.pre_commit(1).unwrap();
    drop(s);
    fs::remove_file(
        dir.path()
            .join(INPROGRESS_DIR)
            .join(&s1.pending[0].inprogress),
    )
    .unwrap();
    let err = TxnSink::open(dir.path(), 0, &header(), Some(&s1))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            SinkError::PendingLost {
                checkpoint_id: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("part-0-00000001-0.csv"));
    let err = TxnSink::open(dir.path(), 1, &header(), Some(&s1))
        .err()
        .unwrap();
    assert!(matches!(
        err,
        SinkError::WrongInstance {
            instance: 1,
            state_instance: 0
        }
    ));
}

#[test]
fn instances_do_not_touch_each_others_work_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(dir.path(), 1, None);
    a.write(&r(1)).unwrap();
    let sa = a.pre_commit(1).unwrap();
    let mut b = open(dir.path(), 11, None); // prefix "part-1" must not match
    b.write(&r(2)).unwrap();
    let sb = b.pre_commit(1).unwrap();
    drop((a, b));
    let _a = open(dir.path(), 1, None);
    assert_eq!(
        inprogress_count(dir.path()),
        1,
        "instance 11's pending file kept"
    );
    let _b = open(dir.path(), 11, Some(&sb));
    assert_eq!(committed(dir.path()), [2]);
    assert!(
        TxnSink::open(dir.path(), 1, &header(), Some(&sa)).is_err(),
        "1's file was discarded"
    );
}

#[test]
fn rescale_recovery_commits_every_old_instance() {
    let dir = tempfile::tempdir().unwrap();
    let mut states = Vec::new();
    for i in 0..3u32 {
        let mut s = open(dir.path(), i, None);
        s.write(&r(i64::from(i))).unwrap();
        states.push(s.pre_commit(4).unwrap());
        s.write(&r(100 + i64::from(i))).unwrap(); // after the checkpoint: discarded
        let _ = s.pre_commit(5).unwrap();
    }
    recover_all(dir.path(), &states).unwrap();
    assert_eq!(committed(dir.path()), [0, 1, 2]);
    assert_eq!(inprogress_count(dir.path()), 0);
}

#[test]
fn parts_roll_by_size_and_every_row_is_committed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TxnSink::open_with(
        dir.path(),
        0,
        &header(),
        None,
        SinkOptions {
            max_part_bytes: 100,
        },
    )
    .unwrap();
    for i in 0..50 {
        s.write(&r(i)).unwrap();
    }
    let st = s.pre_commit(1).unwrap();
    assert!(st.pending.len() > 5);
    s.commit(&st).unwrap();
    s.commit(&st).unwrap(); // idempotent
    assert_eq!(committed(dir.path()), (0..50).collect::<Vec<_>>());
    let json = serde_json::to_string(&st).unwrap();
    assert_eq!(
        serde_json::from_str::<join_operator::sink::SinkState>(&json).unwrap(),
        st
    );
}
