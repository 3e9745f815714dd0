//! The generator: deterministic, bounded disorder (no late event under the
//! job's watermark rule), late fraction as asked, the workload's shape.

use std::fs;
use std::path::Path;

use join_operator::event::{Impression, Play, JOIN_WINDOW_MS};
use join_operator::gen::{generate, GenConfig, GenError, Size};
use join_operator::oracle::{self, OracleConfig};
use join_operator::source::{CsvSource, Source};

fn cfg(impressions: u64, plays: u64, seed: u64) -> GenConfig {
    GenConfig {
        impressions,
        plays,
        ..GenConfig::for_size(Size::Small, seed)
    }
}

fn hash(path: &Path) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&fs::read(path).unwrap())
}

fn read_all<E: join_operator::event::CsvRecord>(path: &Path) -> Vec<E> {
    let mut src = CsvSource::<E>::open(path, 0).unwrap();
    let mut out = Vec::new();
    while src.next_batch(1000, &mut out).unwrap() > 0 {}
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    generate(&cfg(20_000, 4_000, 1), dirs[0].path()).unwrap();
    generate(&cfg(20_000, 4_000, 1), dirs[1].path()).unwrap();
    generate(&cfg(20_000, 4_000, 2), dirs[2].path()).unwrap();
    for f in ["impressions.csv", "plays.csv"] {
        assert_eq!(
            hash(&dirs[0].path().join(f)),
            hash(&dirs[1].path().join(f)),
            "{f}"
        );
        assert_ne!(
            hash(&dirs[0].path().join(f)),
            hash(&dirs[2].path().join(f)),
            "{f}"
        );
    }
}

/// Each event is at most D below the largest ts its stream has shown, and
/// the disorder is real (some events do go backwards).
fn assert_bounded_disorder(ts: &[i64], d: i64) -> usize {
    let mut max = i64::MIN;
    let mut backwards = 0;
    for &t in ts {
        assert!(
            t >= max.saturating_sub(d),
            "ts {t} more than {d} below max {max}"
        );
        if t < max {
            backwards += 1;
        }
        max = max.max(t);
    }
    backwards
}

#[test]
fn no_late_event_without_late_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&cfg(50_000, 10_000, 3), dir.path()).unwrap();
    assert_eq!((summary.impressions, summary.plays), (50_000, 10_000));
    assert_eq!(summary.late_impressions + summary.late_plays, 0);
    let imps: Vec<Impression> = read_all(&summary.impressions_path);
    let plays: Vec<Play> = read_all(&summary.plays_path);
    let ts: Vec<i64> = imps.iter().map(|i| i.ts_ms).collect();
    assert!(assert_bounded_disorder(&ts, 5000) > 1000);
    let ts: Vec<i64> = plays.iter().map(|p| p.ts_ms).collect();
    assert!(assert_bounded_disorder(&ts, 5000) > 100);

    // The job's rule, simulated on the files: not a single late event.
    let r = oracle::run(
        &summary.impressions_path,
        &summary.plays_path,
        OracleConfig::default(),
    )
    .unwrap();
    assert_eq!(r.late_events, vec![]);
    assert!(r.late_rows.is_empty());
    assert_eq!((r.impressions, r.plays), (50_000, 10_000));
}

#[test]
fn zero_bound_gives_ordered_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(5_000, 1_000, 4);
    c.out_of_order_ms = 0;
    let s = generate(&c, dir.path()).unwrap();
    let imps: Vec<Impression> = read_all(&s.impressions_path);
    assert!(imps.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    let plays: Vec<Play> = read_all(&s.plays_path);
    assert!(plays.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
}

#[test]
fn late_fraction_is_about_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(40_000, 8_000, 5);
    c.late_fraction = 0.05;
    let s = generate(&c, dir.path()).unwrap();
    let r = oracle::run(&s.impressions_path, &s.plays_path, OracleConfig::default()).unwrap();
    let total = (s.impressions + s.plays) as f64;
    let measured = r.late_events.len() as f64 / total;
    assert!((0.04..=0.06).contains(&measured), "late share {measured}");
    // The oracle finds no late event the generator did not make late.
    assert!(r.late_events.len() as u64 <= s.late_impressions + s.late_plays);
    assert!(r.late_events.iter().all(|e| e.ts_ms < e.watermark_ms));
}

#[test]
fn workload_has_the_intended_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = generate(&cfg(50_000, 10_000, 6), dir.path()).unwrap();
    let imps: Vec<Impression> = read_all(&s.impressions_path);
    let plays: Vec<Play> = read_all(&s.plays_path);
    let rows = oracle::batch_join(&imps, &plays);
    let mut per_play = std::collections::HashMap::new();
    for r in &rows {
        *per_play.entry(r.play_id).or_insert(0u32) += 1;
    }
    let unmatched = plays.len() - per_play.len();
    let multi = per_play.values().filter(|&&n| n >= 2).count();
    assert!(
        unmatched > plays.len() / 20,
        "some plays match nothing: {unmatched}"
    );
    assert!(
        multi > plays.len() / 50,
        "some plays match several impressions: {multi}"
    );
    let deltas: Vec<i64> = rows
        .iter()
        .map(|r| r.play_ts_ms - r.impression_ts_ms)
        .collect();
    assert!(deltas.contains(&0));
    assert!(deltas.contains(&JOIN_WINDOW_MS));
    let keys: std::collections::HashSet<_> =
        imps.iter().map(|i| (i.profile_id, i.title_id)).collect();
    assert!(
        (15_000..=35_000).contains(&keys.len()),
        "about half as many keys: {}",
        keys.len()
    );
    let ids: std::collections::HashSet<_> = plays.iter().map(|p| p.play_id).collect();
    assert_eq!(ids.len(), plays.len(), "play ids unique");
}

#[test]
fn impossible_config_is_refused_with_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(&cfg(10, 21, 1), dir.path()).unwrap_err();
    assert!(
        matches!(err, GenError::Config(ref m) if m.contains("--plays 21")),
        "{err}"
    );
    let mut c = cfg(10, 2, 1);
    c.late_fraction = 1.5;
    assert!(generate(&c, dir.path())
        .unwrap_err()
        .to_string()
        .contains("--late-fraction"));
    assert!(!dir.path().join("impressions.csv").exists());
}
