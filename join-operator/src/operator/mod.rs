//! The interval-join operator on `state-core`: buffered impressions and
//! plays in map state (one entry per event, ordered by event time), probes
//! as range scans, and event-time timers that drop what the watermark has
//! made useless.

pub mod buckets;
pub mod codec;
pub mod schemas;
pub mod window;

use crate::event::{Impression, JoinedRow, LateEvent, LateReason, Play, Stream, JOIN_WINDOW_MS};
use crate::source::{Arrival, Arrived};
use buckets::{Buckets, RestoredRuns};
use codec::{ImpressionCodec, PlayCodec};
use state_core::{
    keys, KeyFormat, KeyGroupRange, MapState, StateBatch, StateDescriptor, StateError, StateStore,
    TimeDomain, Timer, TimerService,
};
use std::collections::HashSet;
use std::ops::Bound;
use std::path::Path;
use window::{Entry, Window};

pub const IMPRESSIONS_STATE: &str = "impressions";
pub const PLAYS_STATE: &str = "plays";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Bucket(#[from] state_core::BucketError),
    #[error("state '{state}': {reason}")]
    Schema { state: &'static str, reason: String },
    #[error("output: {0}")]
    Output(String),
}

/// Where the operator's results go.
pub trait Output {
    fn row(&mut self, row: &JoinedRow) -> Result<(), OperatorError>;
    fn late(&mut self, event: &LateEvent) -> Result<(), OperatorError>;
}

/// How buffered events are dropped once the watermark has made them useless.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Cleanup {
    /// One event-time timer per buffered event, fired in bounded batches;
    /// each deletes its entry. Three extra writes per event.
    #[default]
    Timers,
    /// Each entry carries its event-time expiry (`ts + window + lateness`):
    /// reads skip expired entries and RocksDB compaction drops them. No
    /// extra writes; state on disk lags until compaction runs.
    Ttl,
}

#[derive(Debug, Clone, Copy)]
pub struct JoinConfig {
    pub allowed_lateness_ms: i64,
    pub cleanup: Cleanup,
    /// Most timers fired per call of [`JoinOperator::on_watermark`]: a
    /// watermark jump fires in bounded rounds, never stalling a checkpoint.
    pub timer_batch: usize,
    /// Memory for the join window held in front of the store (see
    /// [`window`]); 0 sends every event to RocksDB.
    pub window_bytes: usize,
}

impl Default for JoinConfig {
    fn default() -> Self {
        JoinConfig {
            allowed_lateness_ms: 0,
            cleanup: Cleanup::Timers,
            timer_batch: 4096,
            window_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OperatorStats {
    pub events: u64,
    pub rows: u64,
    pub late_events: u64,
    pub timers_fired: u64,
    /// Entries deleted from the store by their cleanup timers.
    pub entries_dropped: u64,
    /// Entries dropped from the window as the watermark passed them (those
    /// also in the store are deleted there by their timer or TTL as well).
    pub window_expired: u64,
    /// Times the window outgrew its budget and was written out whole.
    pub window_spills: u64,
    /// Keys read from the store into the window (after a restore or a spill).
    pub keys_loaded: u64,
    /// Window entries written to the store (at barriers and spills).
    pub entries_persisted: u64,
    /// Bucketed state: runs written because memory ran out.
    pub bucket_spills: u64,
    /// Bucketed state: probes of on-disk runs that read blocks, and those a
    /// run's key filter answered without a read.
    pub run_probes: u64,
    pub filter_skips: u64,
    /// Bucketed state: buckets dropped whole by the watermark.
    pub buckets_expired: u64,
}

/// The states the operator declares, with the impression schema in force.
pub fn descriptors(impression_schema: &str, cfg: &JoinConfig) -> Vec<StateDescriptor> {
    let mut impressions = StateDescriptor::map(IMPRESSIONS_STATE, impression_schema)
        .with_key_format(KeyFormat::I64Pair)
        .with_user_key_format(KeyFormat::I64Pair);
    let mut plays = StateDescriptor::map(PLAYS_STATE, schemas::PLAY_V1)
        .with_key_format(KeyFormat::I64Pair)
        .with_user_key_format(KeyFormat::I64Pair);
    if cfg.cleanup == Cleanup::Ttl {
        let lateness = cfg.allowed_lateness_ms;
        impressions = impressions.with_ttl(JOIN_WINDOW_MS + lateness + 1, TimeDomain::EventTime);
        plays = plays.with_ttl(lateness + 1, TimeDomain::EventTime);
    }
    vec![impressions, plays]
}

pub fn key_bytes(profile_id: i64, title_id: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&keys::ordered_i64(profile_id));
    k[8..].copy_from_slice(&keys::ordered_i64(title_id));
    k
}

/// User key of a buffered event: `(ts_ms, id)`, so entries of a key iterate
/// in event-time order and time ranges are key ranges.
pub(crate) fn user_key(ts_ms: i64, id: i64) -> [u8; 16] {
    key_bytes(ts_ms, id)
}

fn payload(side: u8, user_key: &[u8; 16]) -> [u8; 17] {
    let mut p = [0u8; 17];
    p[0] = side;
    p[1..].copy_from_slice(user_key);
    p
}

fn ts_bound(ts_ms: i64) -> [u8; 8] {
    keys::ordered_i64(ts_ms)
}

/// Timer payload tags: which buffered entry a cleanup timer expires.
const SIDE_IMPRESSION: u8 = b'i';
const SIDE_PLAY: u8 = b'p';

pub struct JoinOperator {
    impressions: MapState<ImpressionCodec>,
    plays: MapState<PlayCodec>,
    timers: TimerService,
    cfg: JoinConfig,
    fired: Vec<Timer>,
    /// Writes of the events processed since the last flush: one RocksDB write
    /// per input batch instead of two per event.
    batch: StateBatch,
    /// Keys written in `batch`: a probe of one of them commits it first, so
    /// reads always see earlier events.
    pending: HashSet<[u8; 16]>,
    /// The join window in memory, when enabled.
    window: Option<Window>,
    /// The buffered events in bucketed state, when enabled (replaces the
    /// window and the map states).
    buckets: Option<Buckets>,
    key_groups: KeyGroupRange,
    max_parallelism: u16,
    stats: OperatorStats,
}

impl JoinOperator {
    /// The operator of one instance, owning `key_groups` of `store`.
    pub fn new(
        store: &StateStore,
        key_groups: KeyGroupRange,
        cfg: JoinConfig,
    ) -> Result<Self, OperatorError> {
        let (imp_codec, play_codec) = codecs(store)?;
        let window = if cfg.window_bytes > 0 {
            let complete_from = if store_is_empty(store, key_groups)? {
                i64::MIN
            } else {
                i64::MAX
            };
            Some(Window::new(cfg.window_bytes, complete_from))
        } else {
            None
        };
        Ok(JoinOperator {
            impressions: store.map_state(IMPRESSIONS_STATE, imp_codec)?,
            plays: store.map_state(PLAYS_STATE, play_codec)?,
            window,
            buckets: None,
            key_groups,
            max_parallelism: store.max_parallelism(),
            timers: store.timers_for(key_groups),
            cfg,
            fired: Vec::new(),
            batch: StateBatch::new(store),
            pending: HashSet::new(),
            stats: OperatorStats::default(),
        })
    }

    /// Tells the window that no event in the store is later than `max_ts`
    /// (the sources' positions of the restored checkpoint), so that once the
    /// watermark has expired them all, a key the window does not hold needs
    /// no read of the store.
    pub fn store_holds_events_up_to(&mut self, max_ts: i64) {
        let expiry = impression_cleanup(max_ts, self.cfg.allowed_lateness_ms);
        if let Some(w) = self.window.as_mut() {
            w.store_expires_by(expiry);
        }
    }

    /// Keeps the buffered events in bucketed state under `dir` (with the
    /// runs of a restored checkpoint) instead of the window and the map
    /// states. Events the map states hold (a checkpoint or savepoint from
    /// before buckets) move into the buckets first.
    pub fn with_buckets(
        mut self,
        store: &StateStore,
        dir: &Path,
        restored: &RestoredRuns,
    ) -> Result<Self, OperatorError> {
        let mut buckets = Buckets::open(
            store,
            dir,
            self.cfg.window_bytes,
            self.cfg.allowed_lateness_ms,
            restored,
        )?;
        if !store_is_empty(store, self.key_groups)? {
            buckets.adopt_store_entries(store, self.key_groups, &self.impressions, &self.plays)?;
        }
        self.window = None;
        self.buckets = Some(buckets);
        Ok(self)
    }

    pub fn stats(&self) -> OperatorStats {
        let mut stats = self.stats;
        if let Some(b) = &self.buckets {
            let s = b.stats();
            stats.bucket_spills = s.spills;
            stats.run_probes = s.run_probes;
            stats.filter_skips = s.filter_skips;
            stats.buckets_expired = s.buckets_expired;
        }
        stats
    }

    /// The barrier's cut of the bucketed state (empty without it): to hand
    /// to the checkpoint with the store's.
    pub fn cut(&mut self) -> Vec<state_core::BucketCut> {
        self.buckets.as_mut().map(|b| b.cut()).unwrap_or_default()
    }

    /// Writes the bucketed state into the map states (for a savepoint of
    /// the store); returns how many entries.
    pub fn materialize(&mut self, store: &StateStore) -> Result<u64, OperatorError> {
        match self.buckets.as_mut() {
            Some(b) => b.materialize(store),
            None => Ok(0),
        }
    }

    /// Commits the writes of the events processed so far.
    pub fn flush(&mut self) -> Result<(), OperatorError> {
        self.batch.commit()?;
        self.pending.clear();
        Ok(())
    }

    /// Makes earlier writes to `key` visible to the probe about to run.
    fn before_probe(&mut self, key: &[u8; 16]) -> Result<(), OperatorError> {
        if self.pending.contains(key) {
            self.flush()?;
        }
        Ok(())
    }

    /// Processes one event; its writes are buffered until [`Self::flush`].
    pub fn process(
        &mut self,
        arrival: Arrival,
        out: &mut impl Output,
    ) -> Result<(), OperatorError> {
        self.stats.events += 1;
        if arrival.is_late(self.cfg.allowed_lateness_ms) {
            self.stats.late_events += 1;
            let reason = LateReason::for_allowed_lateness(self.cfg.allowed_lateness_ms);
            let late = match &arrival.event {
                Arrived::Impression(i) => {
                    LateEvent::new(Stream::Impression, i, arrival.join_watermark, reason)
                }
                Arrived::Play(p) => LateEvent::new(Stream::Play, p, arrival.join_watermark, reason),
            };
            return out.late(&late);
        }
        if let Some(b) = self.buckets.as_mut() {
            self.stats.rows += match arrival.event {
                Arrived::Impression(i) => b.impression(i, out)?,
                Arrived::Play(p) => b.play(p, out)?,
            };
            return Ok(());
        }
        match (arrival.event, self.window.is_some()) {
            (Arrived::Impression(i), true) => self.window_impression(i, out),
            (Arrived::Play(p), true) => self.window_play(p, out),
            (Arrived::Impression(i), false) => self.on_impression(&i, out),
            (Arrived::Play(p), false) => self.on_play(&p, out),
        }
    }

    fn on_impression(
        &mut self,
        imp: &Impression,
        out: &mut impl Output,
    ) -> Result<(), OperatorError> {
        let key = key_bytes(imp.profile_id, imp.title_id);
        self.before_probe(&key)?;
        let lo = ts_bound(imp.ts_ms);
        let hi = ts_bound(imp.ts_ms.saturating_add(JOIN_WINDOW_MS).saturating_add(1));
        let mut result = Ok(());
        let rows = &mut self.stats.rows;
        self.plays.for_each_in_range(
            &key,
            Bound::Included(&lo),
            Bound::Excluded(&hi),
            |_, play| {
                *rows += 1;
                result = out.row(&JoinedRow::new(&play, imp));
                Ok(result.is_ok())
            },
        )?;
        result?;
        self.writer().buffer(&key, &Entry::Impression(imp))?;
        self.pending.insert(key);
        Ok(())
    }

    fn on_play(&mut self, play: &Play, out: &mut impl Output) -> Result<(), OperatorError> {
        let key = key_bytes(play.profile_id, play.title_id);
        self.before_probe(&key)?;
        let lo = ts_bound(play.ts_ms.saturating_sub(JOIN_WINDOW_MS));
        let hi = ts_bound(play.ts_ms.saturating_add(1));
        let mut result = Ok(());
        let rows = &mut self.stats.rows;
        self.impressions.for_each_in_range(
            &key,
            Bound::Included(&lo),
            Bound::Excluded(&hi),
            |_, imp| {
                *rows += 1;
                result = out.row(&JoinedRow::new(play, &imp));
                Ok(result.is_ok())
            },
        )?;
        result?;
        self.writer().buffer(&key, &Entry::Play(play))?;
        self.pending.insert(key);
        Ok(())
    }

    fn writer(&mut self) -> EntryWriter<'_> {
        EntryWriter {
            impressions: &self.impressions,
            plays: &self.plays,
            timers: &self.timers,
            batch: &mut self.batch,
            cfg: self.cfg,
        }
    }

    /// The impression joins the plays of its key in the window; no store
    /// access unless the key has to be loaded.
    fn window_impression(
        &mut self,
        imp: Impression,
        out: &mut impl Output,
    ) -> Result<(), OperatorError> {
        let key = key_bytes(imp.profile_id, imp.title_id);
        self.load_key(&key)?;
        let expires = impression_cleanup(imp.ts_ms, self.cfg.allowed_lateness_ms);
        let Some(window) = self.window.as_mut() else {
            return Ok(());
        };
        let hi = imp.ts_ms.saturating_add(JOIN_WINDOW_MS);
        for play in window.plays_between(&key, imp.ts_ms, hi) {
            self.stats.rows += 1;
            out.row(&JoinedRow::new(play, &imp))?;
        }
        window.add_impression(key, imp, expires);
        self.spill_if_over_budget()
    }

    fn window_play(&mut self, play: Play, out: &mut impl Output) -> Result<(), OperatorError> {
        let key = key_bytes(play.profile_id, play.title_id);
        self.load_key(&key)?;
        let expires = play_cleanup(play.ts_ms, self.cfg.allowed_lateness_ms);
        let Some(window) = self.window.as_mut() else {
            return Ok(());
        };
        let lo = play.ts_ms.saturating_sub(JOIN_WINDOW_MS);
        for imp in window.impressions_between(&key, lo, play.ts_ms) {
            self.stats.rows += 1;
            out.row(&JoinedRow::new(&play, imp))?;
        }
        window.add_play(key, play, expires);
        self.spill_if_over_budget()
    }

    /// Reads `key`'s buffered events from the store into the window unless
    /// the window already knows them.
    fn load_key(&mut self, key: &[u8; 16]) -> Result<(), OperatorError> {
        if self.window.as_ref().is_none_or(|w| w.knows(key)) {
            return Ok(());
        }
        let lateness = self.cfg.allowed_lateness_ms;
        let mut imps = Vec::new();
        self.impressions
            .for_each_in_range(key, Bound::Unbounded, Bound::Unbounded, |_, i| {
                let at = impression_cleanup(i.ts_ms, lateness);
                imps.push((i, at));
                Ok(true)
            })?;
        let mut plays = Vec::new();
        self.plays
            .for_each_in_range(key, Bound::Unbounded, Bound::Unbounded, |_, p| {
                let at = play_cleanup(p.ts_ms, lateness);
                plays.push((p, at));
                Ok(true)
            })?;
        if let Some(w) = self.window.as_mut() {
            w.insert_loaded(*key, imps, plays);
            self.stats.keys_loaded += 1;
        }
        Ok(())
    }

    /// A window past its memory budget goes to the store whole, and keys
    /// are read back from there as their events come.
    fn spill_if_over_budget(&mut self) -> Result<(), OperatorError> {
        if self.window.as_ref().is_some_and(|w| w.over_budget()) {
            self.persist()?;
            if let Some(w) = self.window.as_mut() {
                w.evict_all();
                self.stats.window_spills += 1;
            }
        }
        Ok(())
    }

    /// Writes the window's entries that the store does not hold yet, with
    /// their cleanup (timer or expiry): called before every checkpoint so
    /// that the store holds the whole state. Returns how many it wrote.
    pub fn persist(&mut self) -> Result<usize, OperatorError> {
        let Some(window) = self.window.as_ref() else {
            return Ok(0);
        };
        // In the store's key order, memtable inserts follow each other
        // instead of each searching the skip list from the top.
        let mp = self.max_parallelism;
        let lateness = self.cfg.allowed_lateness_ms;
        // Entries past their cleanup time (held until their queue reaches
        // them) can match nothing: the store need not see them.
        let watermark = window.watermark();
        let mut entries: Vec<_> = window
            .unpersisted()
            .into_iter()
            .filter(|(_, e)| Stored::of(e, lateness).cleanup > watermark)
            .map(|(k, e)| (state_core::key_group_of(&k, mp), k, e))
            .collect();
        entries.sort_unstable_by_key(|(kg, k, e)| (*kg, *k, e.order()));
        let mut writer = EntryWriter {
            impressions: &self.impressions,
            plays: &self.plays,
            timers: &self.timers,
            batch: &mut self.batch,
            cfg: self.cfg,
        };
        for (_, key, entry) in &entries {
            writer.put(key, entry)?;
            writer.commit_if_full()?;
        }
        if self.cfg.cleanup == Cleanup::Timers {
            // Timers are keyed by time first: written in time order.
            let mut timers: Vec<_> = entries
                .iter()
                .map(|(kg, key, entry)| (Stored::of(entry, lateness), *kg, *key))
                .collect();
            timers.sort_unstable_by_key(|(s, kg, key)| (s.cleanup, *kg, *key, s.side, s.user_key));
            for (stored, _, key) in &timers {
                writer.timer(key, stored)?;
                writer.commit_if_full()?;
            }
        }
        let written = entries.len();
        drop(entries);
        self.batch.commit()?;
        if let Some(w) = self.window.as_mut() {
            w.mark_persisted();
        }
        self.stats.entries_persisted += written as u64;
        Ok(written)
    }

    /// Fires up to `timer_batch` due timers. Each expires one buffered
    /// entry (named by its payload), removed by a point delete: an impression
    /// once `ts + window + lateness < watermark`, a play once `ts + lateness <
    /// watermark`, after which no on-time event can match it. Returns how
    /// many fired; call again while it returns a full batch.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<usize, OperatorError> {
        if watermark == i64::MIN || watermark == i64::MAX {
            // MAX: end of input. Nothing can arrive any more, so cleaning up
            // is pointless: skipping it is what keeps the final checkpoint
            // (and the job's exit) from waiting on millions of timers.
            return Ok(0);
        }
        if let Some(window) = self.window.as_mut() {
            self.stats.window_expired += window.expire(watermark) as u64;
            window.shrink_after_burst();
        }
        if let Some(b) = self.buckets.as_mut() {
            self.stats.window_expired += b.expire(watermark);
        }
        self.flush()?;
        self.fired.clear();
        let n = self
            .timers
            .fire_due(watermark, self.cfg.timer_batch, &mut self.fired)?;
        for t in &self.fired {
            let (side, uk) = match t.payload.split_first() {
                Some((&side, uk)) if uk.len() == 16 => (side, uk),
                _ => {
                    return Err(OperatorError::State(StateError::Corrupt {
                        state: "__timers".into(),
                        what: "join timer payload",
                        reason: format!("{} bytes", t.payload.len()),
                    }))
                }
            };
            match side {
                SIDE_IMPRESSION => self.impressions.remove_in(&mut self.batch, &t.key, uk)?,
                _ => self.plays.remove_in(&mut self.batch, &t.key, uk)?,
            }
        }
        self.batch.commit()?;
        self.stats.entries_dropped += n as u64;
        self.stats.timers_fired += n as u64;
        Ok(n)
    }
}

/// Writes per persisted batch: bounds the memory of a barrier's writes.
const PERSIST_BATCH: usize = 64 * 1024;

/// The event time at which an impression can no longer match an on-time play.
pub(crate) fn impression_cleanup(ts_ms: i64, allowed_lateness_ms: i64) -> i64 {
    ts_ms
        .saturating_add(JOIN_WINDOW_MS)
        .saturating_add(allowed_lateness_ms)
        .saturating_add(1)
}

/// The event time at which a play can no longer match an on-time impression.
pub(crate) fn play_cleanup(ts_ms: i64, allowed_lateness_ms: i64) -> i64 {
    ts_ms.saturating_add(allowed_lateness_ms).saturating_add(1)
}

/// How the store records a buffered event: its user key `(ts, id)`, the
/// tag of its cleanup timer's payload, and its cleanup time.
struct Stored {
    user_key: [u8; 16],
    side: u8,
    cleanup: i64,
}

impl Stored {
    fn of(entry: &Entry<'_>, allowed_lateness_ms: i64) -> Self {
        match entry {
            Entry::Impression(i) => Stored {
                user_key: user_key(i.ts_ms, i.impression_id),
                side: SIDE_IMPRESSION,
                cleanup: impression_cleanup(i.ts_ms, allowed_lateness_ms),
            },
            Entry::Play(p) => Stored {
                user_key: user_key(p.ts_ms, p.play_id),
                side: SIDE_PLAY,
                cleanup: play_cleanup(p.ts_ms, allowed_lateness_ms),
            },
        }
    }
}

/// Buffers events in the map states with their cleanup (a timer, or an
/// expiry under `--cleanup ttl`).
struct EntryWriter<'a> {
    impressions: &'a MapState<ImpressionCodec>,
    plays: &'a MapState<PlayCodec>,
    timers: &'a TimerService,
    batch: &'a mut StateBatch,
    cfg: JoinConfig,
}

impl EntryWriter<'_> {
    /// The entry and its cleanup.
    fn buffer(&mut self, key: &[u8; 16], entry: &Entry<'_>) -> Result<(), OperatorError> {
        self.put(key, entry)?;
        if self.cfg.cleanup == Cleanup::Timers {
            self.timer(key, &Stored::of(entry, self.cfg.allowed_lateness_ms))?;
        }
        Ok(())
    }

    /// The map entry alone (with its expiry under `--cleanup ttl`).
    fn put(&mut self, key: &[u8; 16], entry: &Entry<'_>) -> Result<(), OperatorError> {
        let s = Stored::of(entry, self.cfg.allowed_lateness_ms);
        let (uk, at, batch) = (&s.user_key, s.cleanup, &mut *self.batch);
        match (self.cfg.cleanup, entry) {
            (Cleanup::Ttl, Entry::Impression(i)) => {
                self.impressions.put_expiring_in(batch, key, uk, i, at)?
            }
            (Cleanup::Ttl, Entry::Play(p)) => self.plays.put_expiring_in(batch, key, uk, p, at)?,
            (Cleanup::Timers, Entry::Impression(i)) => {
                self.impressions.put_in(batch, key, uk, i)?
            }
            (Cleanup::Timers, Entry::Play(p)) => self.plays.put_in(batch, key, uk, p)?,
        }
        Ok(())
    }

    /// The cleanup timer alone.
    fn timer(&mut self, key: &[u8; 16], s: &Stored) -> Result<(), OperatorError> {
        let payload = payload(s.side, &s.user_key);
        self.timers
            .register_in(self.batch, key, s.cleanup, &payload)?;
        Ok(())
    }

    /// Bounds the memory of a barrier's writes.
    fn commit_if_full(&mut self) -> Result<(), OperatorError> {
        if self.batch.len() >= PERSIST_BATCH {
            self.batch.commit()?;
        }
        Ok(())
    }
}

/// The codecs of the buffered events under the store's current schemas.
fn codecs(store: &StateStore) -> Result<(ImpressionCodec, PlayCodec), OperatorError> {
    let imp =
        ImpressionCodec::new(&store.current_schema(IMPRESSIONS_STATE)?).map_err(|reason| {
            OperatorError::Schema {
                state: IMPRESSIONS_STATE,
                reason,
            }
        })?;
    let play = PlayCodec::new(&store.current_schema(PLAYS_STATE)?).map_err(|reason| {
        OperatorError::Schema {
            state: PLAYS_STATE,
            reason,
        }
    })?;
    Ok((imp, play))
}

/// Whether the store holds no buffered event of `range` (a fresh job).
fn store_is_empty(store: &StateStore, range: KeyGroupRange) -> Result<bool, OperatorError> {
    for state in [IMPRESSIONS_STATE, PLAYS_STATE] {
        if store.scan(state, range)?.next().is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}
