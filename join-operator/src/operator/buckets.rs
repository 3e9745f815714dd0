//! The join's buffered events in bucketed state (`state_core::bucket`):
//! the default since the large-state work (issue 11).
//!
//! Impressions live in buckets of 5 minutes of event time and go once the
//! watermark passes a bucket's end plus the join window; plays in buckets of
//! 10 seconds, gone once the watermark passes them. A play probes the
//! impression buckets of the 30 minutes before it, an impression the play
//! buckets of the 30 minutes after it (only the few alive). Past the memory
//! budget the oldest buckets live on local disk as sorted runs with a key
//! filter: a probe reads a block only where a filter says the key may be.
//!
//! Checkpoints take each state's [`BucketCut`] at the barrier (no I/O); the
//! upload writes what is not yet on disk and uploads each run once. RocksDB
//! holds none of these events; `materialize` writes them into the map states
//! for a savepoint, so savepoints keep the map-state layout.

use super::codec::{ImpressionCodec, PlayCodec};
use super::{impression_cleanup, key_bytes, play_cleanup, user_key, OperatorError, Output};
use super::{IMPRESSIONS_STATE, PLAYS_STATE};
use crate::event::{Impression, JoinedRow, Play, JOIN_WINDOW_MS};
use state_core::{
    BucketCut, BucketOptions, BucketStats, BucketedState, HeapSize, KeyGroupRange, StateStore,
};
use std::path::Path;

/// Event time per impression bucket: a probe spans the 30-minute window,
/// so about seven buckets; memory is freed 5 minutes at a time.
const IMPRESSION_BUCKET_MS: i64 = 5 * 60 * 1000;
/// Plays live for the allowed lateness only (usually 0).
const PLAY_BUCKET_MS: i64 = 10 * 1000;

impl HeapSize for Impression {
    fn heap_bytes(&self) -> usize {
        self.device.capacity()
    }
}

impl HeapSize for Play {}

pub use state_core::checkpoint_buckets::RestoredRuns;

pub struct Buckets {
    impressions: BucketedState<[u8; 16], [u8; 16], ImpressionCodec>,
    plays: BucketedState<[u8; 16], [u8; 16], PlayCodec>,
}

impl Buckets {
    /// The buckets of one instance, writing runs under `dir`.
    pub fn open(
        store: &StateStore,
        dir: &Path,
        memory_budget: usize,
        allowed_lateness_ms: i64,
        restored: &RestoredRuns,
    ) -> Result<Self, OperatorError> {
        let schema = |state: &'static str| -> Result<_, OperatorError> {
            Ok(store.state_meta(state)?.current_version())
        };
        let (imp_codec, play_codec) = super::codecs(store)?;
        let base = BucketOptions {
            width_ms: IMPRESSION_BUCKET_MS,
            // Gone once the watermark reaches the entry's cleanup time.
            retention_ms: impression_cleanup(0, allowed_lateness_ms),
            // Plays are a sliver of the state: most of the budget holds
            // impressions.
            memory_budget: memory_budget / 8 * 7,
            max_parallelism: store.max_parallelism(),
            schema_version: schema(IMPRESSIONS_STATE)?,
        };
        let plays = BucketOptions {
            width_ms: PLAY_BUCKET_MS,
            retention_ms: play_cleanup(0, allowed_lateness_ms),
            memory_budget: memory_budget / 8,
            schema_version: schema(PLAYS_STATE)?,
            ..base
        };
        let runs = |state: &str| restored.get(state).cloned().unwrap_or_default();
        Ok(Buckets {
            impressions: BucketedState::open(
                IMPRESSIONS_STATE,
                &dir.join(IMPRESSIONS_STATE),
                imp_codec,
                base,
                runs(IMPRESSIONS_STATE),
            )?,
            plays: BucketedState::open(
                PLAYS_STATE,
                &dir.join(PLAYS_STATE),
                play_codec,
                plays,
                runs(PLAYS_STATE),
            )?,
        })
    }

    /// Joins the impression with the plays of the 30 minutes after it,
    /// then buffers it. Returns the rows produced.
    pub fn impression(
        &mut self,
        imp: Impression,
        out: &mut impl Output,
    ) -> Result<u64, OperatorError> {
        let key = key_bytes(imp.profile_id, imp.title_id);
        let hi = imp.ts_ms.saturating_add(JOIN_WINDOW_MS);
        let mut rows = 0;
        let mut result = Ok(());
        self.plays.probe(&key, imp.ts_ms, hi, |_, _, play| {
            rows += 1;
            if result.is_ok() {
                result = out.row(&JoinedRow::new(play, &imp));
            }
        })?;
        result?;
        let uk = user_key(imp.ts_ms, imp.impression_id);
        let ts = imp.ts_ms;
        self.impressions.insert(key, uk, ts, imp)?;
        Ok(rows)
    }

    /// Joins the play with the impressions of the 30 minutes before it,
    /// then buffers it.
    pub fn play(&mut self, play: Play, out: &mut impl Output) -> Result<u64, OperatorError> {
        let key = key_bytes(play.profile_id, play.title_id);
        let lo = play.ts_ms.saturating_sub(JOIN_WINDOW_MS);
        let mut rows = 0;
        let mut result = Ok(());
        self.impressions.probe(&key, lo, play.ts_ms, |_, _, imp| {
            rows += 1;
            if result.is_ok() {
                result = out.row(&JoinedRow::new(&play, imp));
            }
        })?;
        result?;
        let uk = user_key(play.ts_ms, play.play_id);
        self.plays.insert(key, uk, play.ts_ms, play)?;
        Ok(rows)
    }

    /// Drops the buckets the watermark has made useless; returns how many
    /// entries went.
    pub fn expire(&mut self, watermark: i64) -> u64 {
        self.impressions.expire(watermark) + self.plays.expire(watermark)
    }

    /// The barrier's part of a checkpoint: no I/O.
    pub fn cut(&mut self) -> Vec<BucketCut> {
        vec![self.impressions.cut(), self.plays.cut()]
    }

    pub fn stats(&self) -> BucketStats {
        let (a, b) = (self.impressions.stats(), self.plays.stats());
        BucketStats {
            spills: a.spills + b.spills,
            runs_written: a.runs_written + b.runs_written,
            run_probes: a.run_probes + b.run_probes,
            filter_skips: a.filter_skips + b.filter_skips,
            buckets_expired: a.buckets_expired + b.buckets_expired,
        }
    }

    /// Loads the buffered events that the store's map states hold for
    /// `range` (a checkpoint or savepoint written before buckets, or by the
    /// per-event path) and removes them there. Returns how many.
    pub fn adopt_store_entries(
        &mut self,
        store: &StateStore,
        range: KeyGroupRange,
        imps: &state_core::MapState<ImpressionCodec>,
        plays: &state_core::MapState<PlayCodec>,
    ) -> Result<u64, OperatorError> {
        let mut keys = Vec::new();
        for state in [IMPRESSIONS_STATE, PLAYS_STATE] {
            for e in store.scan(state, range)? {
                let e = e?;
                if keys.last() != Some(&e.key) {
                    keys.push(e.key);
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let mut n = 0;
        for key in &keys {
            let Ok(k) = <[u8; 16]>::try_from(key.as_slice()) else {
                continue;
            };
            for (uk, imp) in imps.entries(key)? {
                if let Ok(uk) = <[u8; 16]>::try_from(uk.as_slice()) {
                    let ts = imp.ts_ms;
                    self.impressions.insert(k, uk, ts, imp)?;
                    n += 1;
                }
            }
            for (uk, play) in plays.entries(key)? {
                if let Ok(uk) = <[u8; 16]>::try_from(uk.as_slice()) {
                    self.plays.insert(k, uk, play.ts_ms, play)?;
                    n += 1;
                }
            }
            imps.clear(key)?;
            plays.clear(key)?;
        }
        Ok(n)
    }

    /// Writes every buffered event into the store's map states, as the
    /// per-event path keeps them: for a savepoint taken from the store.
    pub fn materialize(&mut self, store: &StateStore) -> Result<u64, OperatorError> {
        let mut writer = store.raw_writer();
        let n =
            writer.put_bucketed(&mut self.impressions)? + writer.put_bucketed(&mut self.plays)?;
        writer.commit()?;
        Ok(n)
    }
}
