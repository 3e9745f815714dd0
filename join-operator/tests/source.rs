//! CSV sources: resume from offsets, header and data errors naming file,
//! line and column, and the merged order resumable with watermarks.

use std::fs;
use std::path::Path;

use join_operator::event::{FieldProblem, Impression, Play};
use join_operator::gen::{generate, GenConfig, Size};
use join_operator::source::{
    Arrival, CsvSource, MergeOffsets, MergedSources, Source, SourceError, Watermarks,
};

const IMP_HEADER: &str = "impression_id,profile_id,title_id,ts_ms,row,rank,device";

fn small_input(dir: &Path) {
    let cfg = GenConfig {
        impressions: 3_000,
        plays: 600,
        ..GenConfig::for_size(Size::Small, 9)
    };
    generate(&cfg, dir).unwrap();
}

fn drain<S: Source>(src: &mut S, batch: usize) -> Vec<S::Event> {
    let mut out = Vec::new();
    while src.next_batch(batch, &mut out).unwrap() > 0 {}
    out
}

#[test]
fn resume_from_offset_returns_exactly_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    small_input(dir.path());
    let path = dir.path().join("impressions.csv");
    let all: Vec<Impression> = drain(&mut CsvSource::open(&path, 0).unwrap(), 777);
    assert_eq!(all.len(), 3_000);
    for k in [0, 1, 999, 2_999, 3_000] {
        let mut src = CsvSource::<Impression>::open(&path, 0).unwrap();
        let mut head = Vec::new();
        while head.len() < k {
            let want = (k - head.len()).min(128);
            src.next_batch(want, &mut head).unwrap();
        }
        let offset = src.offset();
        drop(src);
        let rest = drain(
            &mut CsvSource::<Impression>::open(&path, offset).unwrap(),
            100,
        );
        assert_eq!(head.len() + rest.len(), all.len(), "k={k}");
        assert_eq!(&rest[..], &all[k..], "k={k}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_line_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "imps.csv",
        &format!("{IMP_HEADER}\n1,2,3,4,5,6,tv\n2,2,3,4x,5,6,tv\n"),
    );
    let mut src = CsvSource::<Impression>::open(&p, 0).unwrap();
    let mut out = Vec::new();
    let err = src.next_batch(10, &mut out).unwrap_err();
    match &err {
        SourceError::Parse { line, error, .. } => {
            assert_eq!(*line, 3);
            assert_eq!((error.column, error.name), (4, "ts_ms"));
            assert!(matches!(error.problem, FieldProblem::NotAnInteger(_)));
        }
        other => panic!("{other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("imps.csv") && msg.contains("line 3") && msg.contains("column 4 (ts_ms)"),
        "{msg}"
    );
    assert_eq!(out.len(), 1, "the good line before it was returned");
}

#[test]
fn line_numbers_stay_true_after_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "imps.csv",
        &format!("{IMP_HEADER}\n1,2,3,4,5,6,tv\n2,2,3,4,5,6,tv\n3,2,3,4,5,6\n"),
    );
    let mut src = CsvSource::<Impression>::open(&p, 0).unwrap();
    let mut out = Vec::new();
    src.next_batch(1, &mut out).unwrap();
    let mut src = CsvSource::<Impression>::open(&p, src.offset()).unwrap();
    src.next_batch(1, &mut out).unwrap();
    let err = src.next_batch(1, &mut out).unwrap_err();
    assert!(
        matches!(&err, SourceError::Parse { line: 4, error, .. } if error.column == 7 && error.problem == FieldProblem::Missing),
        "{err}"
    );
}

#[test]
fn wrong_header_is_refused_with_the_expected_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "plays.csv",
        "play_id,profile,title_id,ts_ms,duration_ms\n1,2,3,4,5\n",
    );
    let err = CsvSource::<Play>::open(&p, 0).err().unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("plays.csv") && msg.contains("play_id,profile_id,title_id,ts_ms,duration_ms"),
        "{msg}"
    );
    let empty = write(dir.path(), "empty.csv", "");
    assert!(matches!(
        CsvSource::<Play>::open(&empty, 0),
        Err(SourceError::Header { .. })
    ));
    let missing = CsvSource::<Play>::open(dir.path().join("nope.csv"), 0)
        .err()
        .unwrap();
    assert!(matches!(missing, SourceError::Io { op: "open", .. }));
}

#[test]
fn offsets_not_at_a_line_start_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = "play_id,profile_id,title_id,ts_ms,duration_ms\n1,2,3,4,5\n";
    let p = write(dir.path(), "plays.csv", text);
    for bad in [3u64, 50, 200] {
        let err = CsvSource::<Play>::open(&p, bad).err().unwrap();
        assert!(
            matches!(err, SourceError::BadOffset { offset, .. } if offset == bad),
            "{err}"
        );
    }
    let at_end = CsvSource::<Play>::open(&p, text.len() as u64).unwrap();
    assert_eq!(at_end.offset(), text.len() as u64);
}

#[test]
fn crlf_and_missing_final_newline_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "plays.csv",
        "play_id,profile_id,title_id,ts_ms,duration_ms\r\n1,2,3,4,5\r\n\n6,7,8,9,10",
    );
    let got = drain(&mut CsvSource::<Play>::open(&p, 0).unwrap(), 10);
    assert_eq!(got.iter().map(|p| p.play_id).collect::<Vec<_>>(), [1, 6]);
    assert_eq!(got[1].duration_ms, 10);
}

fn arrivals(
    m: &mut MergedSources<CsvSource<Impression>, CsvSource<Play>>,
    n: usize,
) -> Vec<Arrival> {
    let mut v = Vec::new();
    while v.len() < n {
        match m.next_arrival().unwrap() {
            Some(a) => v.push(a),
            None => break,
        }
    }
    v
}

/// What the job relies on: stopping anywhere and resuming with the offsets
/// and watermarks gives the same arrivals, watermarks included.
#[test]
fn merged_order_resumes_identically() {
    let dir = tempfile::tempdir().unwrap();
    small_input(dir.path());
    let (ip, pp) = (
        dir.path().join("impressions.csv"),
        dir.path().join("plays.csv"),
    );
    let open = |o, w| MergedSources::open_csv(&ip, &pp, o, w).unwrap();
    let all = arrivals(
        &mut open(MergeOffsets::default(), Watermarks::new(5000)),
        usize::MAX,
    );
    assert_eq!(all.len(), 3_600);
    // Heads in merge order: each arrival is the smaller of the two heads.
    let mut split = open(MergeOffsets::default(), Watermarks::new(5000));
    let first = arrivals(&mut split, 1_234);
    let (offsets, wm) = (split.offsets(), split.watermarks().clone());
    drop(split);
    let rest = arrivals(&mut open(offsets, wm), usize::MAX);
    assert_eq!(first.len() + rest.len(), all.len());
    assert_eq!(&first[..], &all[..1_234]);
    assert_eq!(&rest[..], &all[1_234..]);
}

/// A line longer than the read buffer (1 MiB) is read whole, and offsets
/// around it stay exact.
#[test]
fn lines_longer_than_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let device = "x".repeat(3 << 20);
    let p = write(
        dir.path(),
        "imps.csv",
        &format!("{IMP_HEADER}\n1,2,3,4,5,6,tv\n2,2,3,4,5,6,{device}\n3,2,3,4,5,6,web\n"),
    );
    let mut src = CsvSource::<Impression>::open(&p, 0).unwrap();
    let mut out = Vec::new();
    src.next_batch(2, &mut out).unwrap();
    assert_eq!(out[1].device.len(), 3 << 20);
    let rest = drain(
        &mut CsvSource::<Impression>::open(&p, src.offset()).unwrap(),
        5,
    );
    assert_eq!(
        rest.iter().map(|i| i.impression_id).collect::<Vec<_>>(),
        [3]
    );
}
