//! `stream-join validate`: the committed streaming output against the oracle,
//! compared as multisets — rows missing, extra and duplicated — and the late
//! side output against the oracle's late events.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::event::{CsvRecord, JoinedRow, LateEvent, Stream};
use crate::oracle::{self, OracleConfig};
use crate::source::{CsvSource, Source, SourceError};

/// Name of the late side output folder inside the output folder.
pub const LATE_DIR: &str = "late";

#[derive(Debug, Clone)]
pub struct ValidateConfig {
    pub impressions: PathBuf,
    pub plays: PathBuf,
    pub output: PathBuf,
    pub oracle: OracleConfig,
    /// How many differing rows of each kind the report lists.
    pub max_listed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("validate: cannot list {}: {source}", .path.display())]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A value whose count in the output differs from the expected count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff<T> {
    pub value: T,
    pub expected: u64,
    pub found: u64,
}

/// Differences of one multiset comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MultisetDiff<T> {
    pub expected: u64,
    pub found: u64,
    /// Expected but absent (counted with multiplicity).
    pub missing: u64,
    /// Present but not expected at all.
    pub extra: u64,
    /// Expected, but present more often than expected (the surplus).
    pub duplicated: u64,
    pub missing_list: Vec<Diff<T>>,
    pub extra_list: Vec<Diff<T>>,
    pub duplicated_list: Vec<Diff<T>>,
}

impl<T> MultisetDiff<T> {
    pub fn is_equal(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.duplicated == 0
    }
}

/// Compares two multisets given as sorted slices.
pub fn compare_sorted<T: Ord + Clone>(
    expected: &[T],
    found: &[T],
    max_listed: usize,
) -> MultisetDiff<T> {
    let mut d = MultisetDiff {
        expected: expected.len() as u64,
        found: found.len() as u64,
        missing: 0,
        extra: 0,
        duplicated: 0,
        missing_list: Vec::new(),
        extra_list: Vec::new(),
        duplicated_list: Vec::new(),
    };
    let (mut e, mut f) = (0, 0);
    while e < expected.len() || f < found.len() {
        let value = match (expected.get(e), found.get(f)) {
            (Some(a), Some(b)) => a.min(b).clone(),
            (Some(a), None) => a.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => break,
        };
        let ne = expected[e..].partition_point(|x| *x == value);
        let nf = found[f..].partition_point(|x| *x == value);
        e += ne;
        f += nf;
        let (ne, nf) = (ne as u64, nf as u64);
        let diff = || Diff {
            value: value.clone(),
            expected: ne,
            found: nf,
        };
        if nf < ne {
            d.missing += ne - nf;
            push_capped(&mut d.missing_list, diff(), max_listed);
        } else if ne == 0 {
            d.extra += nf;
            push_capped(&mut d.extra_list, diff(), max_listed);
        } else if nf > ne {
            d.duplicated += nf - ne;
            push_capped(&mut d.duplicated_list, diff(), max_listed);
        }
    }
    d
}

fn push_capped<T>(list: &mut Vec<T>, v: T, max: usize) {
    if list.len() < max {
        list.push(v);
    }
}

/// Identity of a late event: which stream and which id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LateId {
    pub stream: Stream,
    pub event_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    pub equal: bool,
    pub output_files: u64,
    pub late_files: u64,
    pub rows: MultisetDiff<JoinedRow>,
    pub late: MultisetDiff<LateId>,
    /// Rows of the batch join left out because a late event is involved.
    pub rows_of_late_events: u64,
    /// Of the extra rows, those a late event would have produced.
    pub extra_rows_of_late_events: u64,
}

/// Runs the oracle and compares the committed output with it.
pub fn validate(cfg: &ValidateConfig) -> Result<ValidationReport, ValidateError> {
    let oracle = oracle::run(&cfg.impressions, &cfg.plays, cfg.oracle)?;
    let (mut rows, output_files) = read_committed::<JoinedRow>(&cfg.output)?;
    rows.sort_unstable();
    let late_dir = cfg.output.join(LATE_DIR);
    let (late_rows, late_files) = if late_dir.is_dir() {
        read_committed::<LateEvent>(&late_dir)?
    } else {
        (Vec::new(), 0)
    };
    let mut late_found: Vec<LateId> = late_rows.iter().map(late_id).collect();
    late_found.sort_unstable();
    let mut late_expected: Vec<LateId> = oracle.late_events.iter().map(late_id).collect();
    late_expected.sort_unstable();

    let rows = compare_sorted(&oracle.expected, &rows, cfg.max_listed);
    let late = compare_sorted(&late_expected, &late_found, cfg.max_listed);
    let extra_rows_of_late_events = count_extra_in(&oracle.late_rows, &rows);
    Ok(ValidationReport {
        equal: rows.is_equal() && late.is_equal(),
        output_files,
        late_files,
        rows,
        late,
        rows_of_late_events: oracle.late_rows.len() as u64,
        extra_rows_of_late_events,
    })
}

/// Extra rows that are in `late_rows`; exact when every extra row is listed.
fn count_extra_in(late_rows: &[JoinedRow], d: &MultisetDiff<JoinedRow>) -> u64 {
    d.extra_list
        .iter()
        .filter(|x| late_rows.binary_search(&x.value).is_ok())
        .map(|x| x.found)
        .sum()
}

fn late_id(e: &LateEvent) -> LateId {
    LateId {
        stream: e.stream,
        event_id: e.event_id,
    }
}

/// Every committed `*.csv` directly in `dir` (hidden files and folders are
/// work in progress and never count), header checked.
pub fn read_committed<R: CsvRecord>(dir: &Path) -> Result<(Vec<R>, u64), ValidateError> {
    let list_err = |source| ValidateError::List {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().map_err(list_err)?.is_file();
        if is_file && name.ends_with(".csv") && !name.starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut rows = Vec::new();
    for f in &files {
        let mut src = CsvSource::<R>::open(f, 0)?;
        while src.next_batch(64 * 1024, &mut rows)? > 0 {}
    }
    Ok((rows, files.len() as u64))
}

/// A human-readable report.
pub fn render_table(r: &ValidationReport) -> String {
    let mut s = String::new();
    let verdict = if r.equal { "EQUAL" } else { "DIFFERENT" };
    let _ = writeln!(s, "validation: {verdict}");
    let _ = writeln!(s, "{:<22} {:>12} {:>12}", "", "rows", "late events");
    let line = |s: &mut String, name: &str, a: u64, b: u64| {
        let _ = writeln!(s, "{name:<22} {a:>12} {b:>12}");
    };
    line(&mut s, "expected", r.rows.expected, r.late.expected);
    line(&mut s, "found", r.rows.found, r.late.found);
    line(&mut s, "missing", r.rows.missing, r.late.missing);
    line(&mut s, "extra", r.rows.extra, r.late.extra);
    line(&mut s, "duplicated", r.rows.duplicated, r.late.duplicated);
    let _ = writeln!(
        s,
        "files: {} output, {} late; rows left out for late events: {} ({} of them found as extra)",
        r.output_files, r.late_files, r.rows_of_late_events, r.extra_rows_of_late_events
    );
    list_rows(&mut s, "missing row", &r.rows.missing_list);
    list_rows(&mut s, "extra row", &r.rows.extra_list);
    list_rows(&mut s, "duplicated row", &r.rows.duplicated_list);
    list_late(&mut s, "missing late event", &r.late.missing_list);
    list_late(&mut s, "unexpected late event", &r.late.extra_list);
    list_late(&mut s, "duplicated late event", &r.late.duplicated_list);
    s
}

fn list_rows(s: &mut String, what: &str, list: &[Diff<JoinedRow>]) {
    for d in list {
        let mut line = Vec::new();
        d.value.write_csv(&mut line);
        let _ = write!(
            s,
            "  {what} (expected {}, found {}): {}",
            d.expected,
            d.found,
            String::from_utf8_lossy(&line)
        );
    }
}

fn list_late(s: &mut String, what: &str, list: &[Diff<LateId>]) {
    for d in list {
        let _ = writeln!(
            s,
            "  {what} (expected {}, found {}): {} {}",
            d.expected, d.found, d.value.stream, d.value.event_id
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The merge walk agrees with counting both sides in maps.
        #[test]
        fn multiset_compare_matches_counting(
            mut a in proptest::collection::vec(0u8..20, 0..60),
            mut b in proptest::collection::vec(0u8..20, 0..60),
        ) {
            a.sort_unstable();
            b.sort_unstable();
            let count = |v: &[u8]| v.iter().fold(BTreeMap::new(), |mut m, x| {
                *m.entry(*x).or_insert(0u64) += 1;
                m
            });
            let (ca, cb) = (count(&a), count(&b));
            let (mut missing, mut extra, mut dup) = (0, 0, 0);
            for v in 0u8..20 {
                let (e, f) = (ca.get(&v).copied().unwrap_or(0), cb.get(&v).copied().unwrap_or(0));
                if f < e { missing += e - f }
                else if e == 0 { extra += f }
                else { dup += f - e }
            }
            let d = compare_sorted(&a, &b, 100);
            prop_assert_eq!((d.missing, d.extra, d.duplicated), (missing, extra, dup));
            prop_assert_eq!(d.is_equal(), a == b);
        }
    }

    #[test]
    fn multiset_compare_counts_each_kind() {
        let expected = [1, 2, 3, 3, 5];
        let found = [2, 2, 3, 4, 5, 5, 5];
        let d = compare_sorted(&expected, &found, 10);
        assert_eq!(d.missing, 2, "1 absent, one of the two 3s absent");
        assert_eq!(d.extra, 1, "4 never expected");
        assert_eq!(d.duplicated, 3, "one surplus 2, two surplus 5s");
        assert_eq!(
            d.missing_list.iter().map(|x| x.value).collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(!d.is_equal());
        assert!(compare_sorted(&expected, &expected, 10).is_equal());
        assert_eq!(compare_sorted(&expected, &found, 1).missing_list.len(), 1);
    }
}
