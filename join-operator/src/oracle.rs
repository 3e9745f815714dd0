//! The batch join of the two whole files — what the streaming output must
//! equal — and the late events of the streaming rule, found by replaying the
//! files through the very merge and watermarks the job uses
//! ([`MergedSources`]).
//!
//! The join is a sort-merge join on `(key, ts)` rather than a hash join: the
//! compact sorted vectors take 40 bytes per event, about half of a hash map of
//! per-key vectors, which keeps the medium workload well under 1 GiB.

use std::path::Path;

use crate::event::{in_window, Event, JoinKey, JoinedRow, LateEvent, LateReason, JOIN_WINDOW_MS};
use crate::event::{Impression, Play};
use crate::source::{Arrived, MergeOffsets, MergedSources, SourceError, Watermarks};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleConfig {
    pub out_of_order_ms: i64,
    pub allowed_lateness_ms: i64,
}

impl Default for OracleConfig {
    fn default() -> Self {
        OracleConfig {
            out_of_order_ms: 5000,
            allowed_lateness_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OracleResult {
    /// Batch join minus every row that involves a late event; sorted.
    pub expected: Vec<JoinedRow>,
    /// Late events in arrival order.
    pub late_events: Vec<LateEvent>,
    /// Rows the late events would have produced had they been on time; sorted.
    pub late_rows: Vec<JoinedRow>,
    pub impressions: u64,
    pub plays: u64,
}

/// One event reduced to what the join needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Side {
    key: JoinKey,
    ts: i64,
    id: i64,
    late: bool,
}

impl Side {
    fn of<E: Event>(e: &E, late: bool) -> Self {
        Side {
            key: e.key(),
            ts: e.ts_ms(),
            id: e.id(),
            late,
        }
    }
}

fn row(imp: &Side, play: &Side) -> JoinedRow {
    JoinedRow {
        play_id: play.id,
        impression_id: imp.id,
        profile_id: play.key.profile_id,
        title_id: play.key.title_id,
        play_ts_ms: play.ts,
        impression_ts_ms: imp.ts,
    }
}

/// Sort-merge interval join; calls `emit(impression, play)` per matching pair.
fn join_sides(imps: &mut [Side], plays: &mut [Side], mut emit: impl FnMut(&Side, &Side)) {
    imps.sort_unstable();
    plays.sort_unstable();
    let (mut ki, mut kp) = (0, 0);
    while ki < imps.len() && kp < plays.len() {
        let key = imps[ki].key.min(plays[kp].key);
        let ie = ki + imps[ki..].partition_point(|s| s.key == key);
        let pe = kp + plays[kp..].partition_point(|s| s.key == key);
        join_one_key(&imps[ki..ie], &plays[kp..pe], &mut emit);
        ki = ie;
        kp = pe;
    }
}

/// Both slices are one key's events sorted by ts: the window of matching
/// impressions only moves forward as the plays' ts grows.
fn join_one_key(imps: &[Side], plays: &[Side], emit: &mut impl FnMut(&Side, &Side)) {
    let (mut lo, mut hi) = (0, 0);
    for p in plays {
        while lo < imps.len() && imps[lo].ts < p.ts.saturating_sub(JOIN_WINDOW_MS) {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < imps.len() && imps[hi].ts <= p.ts {
            hi += 1;
        }
        for i in &imps[lo..hi] {
            debug_assert!(in_window(i.ts, p.ts));
            emit(i, p);
        }
    }
}

/// The batch join of workload.md over in-memory events; rows sorted.
pub fn batch_join(impressions: &[Impression], plays: &[Play]) -> Vec<JoinedRow> {
    let mut imps: Vec<Side> = impressions.iter().map(|i| Side::of(i, false)).collect();
    let mut ps: Vec<Side> = plays.iter().map(|p| Side::of(p, false)).collect();
    let mut rows = Vec::new();
    join_sides(&mut imps, &mut ps, |i, p| rows.push(row(i, p)));
    rows.sort_unstable();
    rows
}

/// Reads both files in the job's merge order, marks late events by the
/// watermark rule, and joins everything.
pub fn run(
    impressions: &Path,
    plays: &Path,
    cfg: OracleConfig,
) -> Result<OracleResult, SourceError> {
    let mut merged = MergedSources::open_csv(
        impressions,
        plays,
        MergeOffsets::default(),
        Watermarks::new(cfg.out_of_order_ms),
    )?;
    let reason = LateReason::for_allowed_lateness(cfg.allowed_lateness_ms);
    let (mut imps, mut ps, mut late_events) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(arrival) = merged.next_arrival()? {
        let late = arrival.is_late(cfg.allowed_lateness_ms);
        let stream = arrival.event.stream();
        match &arrival.event {
            Arrived::Impression(i) => {
                imps.push(Side::of(i, late));
                if late {
                    late_events.push(LateEvent::new(stream, i, arrival.join_watermark, reason));
                }
            }
            Arrived::Play(p) => {
                ps.push(Side::of(p, late));
                if late {
                    late_events.push(LateEvent::new(stream, p, arrival.join_watermark, reason));
                }
            }
        }
    }
    let mut result = OracleResult {
        impressions: imps.len() as u64,
        plays: ps.len() as u64,
        late_events,
        ..OracleResult::default()
    };
    join_sides(&mut imps, &mut ps, |i, p| {
        if i.late || p.late {
            result.late_rows.push(row(i, p));
        } else {
            result.expected.push(row(i, p));
        }
    });
    result.expected.sort_unstable();
    result.late_rows.sort_unstable();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(p: i64, t: i64, ts: i64, id: i64) -> Side {
        Side {
            key: JoinKey {
                profile_id: p,
                title_id: t,
            },
            ts,
            id,
            late: false,
        }
    }

    /// The sort-merge join equals the definition applied to every pair.
    #[test]
    fn sort_merge_equals_nested_loop() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let mut imps: Vec<Side> = (0..60)
                .map(|id| {
                    side(
                        rng.gen_range(0..3),
                        rng.gen_range(0..3),
                        rng.gen_range(0..5_000_000),
                        id,
                    )
                })
                .collect();
            let mut plays: Vec<Side> = (0..60)
                .map(|id| {
                    side(
                        rng.gen_range(0..3),
                        rng.gen_range(0..3),
                        rng.gen_range(0..5_000_000),
                        id,
                    )
                })
                .collect();
            let mut naive = Vec::new();
            for i in &imps {
                for p in &plays {
                    if i.key == p.key && in_window(i.ts, p.ts) {
                        naive.push(row(i, p));
                    }
                }
            }
            let mut fast = Vec::new();
            join_sides(&mut imps, &mut plays, |i, p| fast.push(row(i, p)));
            naive.sort_unstable();
            fast.sort_unstable();
            assert_eq!(fast, naive);
        }
    }
}
