//! The oracle on tiny hand-written inputs with hand-checked rows.

use std::fs;
use std::path::{Path, PathBuf};

use join_operator::event::{JoinedRow, LateEvent, LateReason, Stream};
use join_operator::oracle::{self, OracleConfig};

const IMP_HEADER: &str = "impression_id,profile_id,title_id,ts_ms,row,rank,device";
const PLAY_HEADER: &str = "play_id,profile_id,title_id,ts_ms,duration_ms";

fn files(dir: &Path, imps: &[&str], plays: &[&str]) -> (PathBuf, PathBuf) {
    let (ip, pp) = (dir.join("impressions.csv"), dir.join("plays.csv"));
    fs::write(&ip, format!("{IMP_HEADER}\n{}\n", imps.join("\n"))).unwrap();
    fs::write(&pp, format!("{PLAY_HEADER}\n{}\n", plays.join("\n"))).unwrap();
    (ip, pp)
}

fn row(play: i64, imp: i64, key: (i64, i64), play_ts: i64, imp_ts: i64) -> JoinedRow {
    JoinedRow {
        play_id: play,
        impression_id: imp,
        profile_id: key.0,
        title_id: key.1,
        play_ts_ms: play_ts,
        impression_ts_ms: imp_ts,
    }
}

#[test]
fn window_boundaries_and_a_play_matching_two_impressions() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, pp) = files(
        dir.path(),
        &[
            "1,1,1,1000000,0,0,tv",
            "2,1,1,1000500,0,1,web",
            "3,2,2,2000000,1,0,mobile",
        ],
        &[
            "1,1,1,1000000,60000", // at i1.ts: i1 only (i2 is later)
            "6,2,2,1999999,60000", // 1 ms before i3: nothing
            "5,2,1,2000000,60000", // other key: nothing
            "2,1,1,2800000,60000", // i1.ts + 1_800_000 and within i2's window: both
            "3,1,1,2800001,60000", // i1.ts + 1_800_001: i2 only
            "4,1,1,2800501,60000", // i2.ts + 1_800_001: nothing
        ],
    );
    let r = oracle::run(&ip, &pp, OracleConfig::default()).unwrap();
    assert_eq!(
        r.expected,
        vec![
            row(1, 1, (1, 1), 1_000_000, 1_000_000),
            row(2, 1, (1, 1), 2_800_000, 1_000_000),
            row(2, 2, (1, 1), 2_800_000, 1_000_500),
            row(3, 2, (1, 1), 2_800_001, 1_000_500),
        ]
    );
    assert!(r.late_events.is_empty() && r.late_rows.is_empty());
    assert_eq!((r.impressions, r.plays), (3, 6));
}

/// D = 1000. Merge by head ts, ties to impressions:
/// i1(10k) | p1(15k): wm MIN | i2(20k): wm min(9k, 14k) = 9k |
/// i3(12k): wm min(19k, 14k) = 14k -> LATE | p2(21k) | impressions exhausted:
/// p3(30k): wm 20k | p4(5k): wm 29k -> LATE.
#[test]
fn late_events_follow_the_merge_and_watermark_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, pp) = files(
        dir.path(),
        &[
            "1,7,8,10000,0,0,tv",
            "2,7,8,20000,0,0,tv",
            "3,7,8,12000,0,0,tv",
        ],
        &[
            "1,7,8,15000,1",
            "2,7,8,21000,1",
            "3,7,8,30000,1",
            "4,7,8,5000,1",
        ],
    );
    let cfg = OracleConfig {
        out_of_order_ms: 1000,
        allowed_lateness_ms: 0,
    };
    let r = oracle::run(&ip, &pp, cfg).unwrap();
    let k = (7, 8);
    assert_eq!(
        r.late_events,
        vec![
            LateEvent {
                stream: Stream::Impression,
                event_id: 3,
                profile_id: 7,
                title_id: 8,
                ts_ms: 12_000,
                watermark_ms: 14_000,
                reason: LateReason::BehindWatermark
            },
            LateEvent {
                stream: Stream::Play,
                event_id: 4,
                profile_id: 7,
                title_id: 8,
                ts_ms: 5_000,
                watermark_ms: 29_000,
                reason: LateReason::BehindWatermark
            },
        ]
    );
    assert_eq!(
        r.expected,
        vec![
            row(1, 1, k, 15_000, 10_000),
            row(2, 1, k, 21_000, 10_000),
            row(2, 2, k, 21_000, 20_000),
            row(3, 1, k, 30_000, 10_000),
            row(3, 2, k, 30_000, 20_000),
        ]
    );
    assert_eq!(
        r.late_rows,
        vec![
            row(1, 3, k, 15_000, 12_000),
            row(2, 3, k, 21_000, 12_000),
            row(3, 3, k, 30_000, 12_000)
        ]
    );

    // Allowed lateness 2000: i3 (12k >= 14k - 2k) is joined, p4 (5k < 27k) is not.
    let r = oracle::run(
        &ip,
        &pp,
        OracleConfig {
            allowed_lateness_ms: 2000,
            ..cfg
        },
    )
    .unwrap();
    assert_eq!(r.late_events.len(), 1);
    assert_eq!(r.late_events[0].event_id, 4);
    assert_eq!(r.late_events[0].reason, LateReason::BeyondAllowedLateness);
    assert_eq!(r.expected.len(), 8);
    assert!(r.late_rows.is_empty());
}

#[test]
fn batch_join_in_memory_matches_the_file_oracle() {
    use join_operator::event::{Impression, Play};
    let imps = vec![Impression {
        impression_id: 1,
        profile_id: 1,
        title_id: 1,
        ts_ms: 0,
        row: 0,
        rank: 0,
        device: "tv".into(),
    }];
    let plays = vec![
        Play {
            play_id: 1,
            profile_id: 1,
            title_id: 1,
            ts_ms: 1_800_000,
            duration_ms: 1,
        },
        Play {
            play_id: 2,
            profile_id: 1,
            title_id: 1,
            ts_ms: 1_800_001,
            duration_ms: 1,
        },
        Play {
            play_id: 3,
            profile_id: 1,
            title_id: 1,
            ts_ms: -1,
            duration_ms: 1,
        },
    ];
    assert_eq!(
        oracle::batch_join(&imps, &plays),
        vec![row(1, 1, (1, 1), 1_800_000, 0)]
    );
}
