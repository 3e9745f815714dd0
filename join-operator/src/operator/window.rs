//! The join window held in memory, in front of the map states.
//!
//! An event lives in the join only until the watermark passes its cleanup
//! time: 30 minutes of event time for an impression, the out-of-order bound
//! for a play. On a replay or a busy stream that is a fraction of a second of
//! wall time, far shorter than a checkpoint interval, so writing every event
//! to RocksDB, scanning RocksDB for every probe and deleting every event again
//! does work whose result no checkpoint ever sees. The window keeps the
//! buffered events of its keys in memory (sorted per key by `(ts, id)`, as
//! the map states order them) and writes to the store only the entries still
//! alive at a checkpoint barrier ([`Window::unpersisted`]), or all of them
//! when it outgrows its memory budget and is emptied. The store stays the
//! state of record: a checkpoint, savepoint or restore sees exactly what the
//! per-event path would have left there.
//!
//! A key missing from the window is a key without useful state once the
//! window is *complete*: the store held nothing of this instance's key groups
//! when the window was created, or every entry the store held beyond the
//! window (restored, or written out when the window outgrew its budget) has
//! expired by event time since. Expired entries can never match an on-time
//! event, so the store may still hold them. Until then the caller loads a
//! missing key from the store first ([`Window::insert_loaded`]).

use crate::event::{Impression, Play};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// A buffered event: its time and id order entries as the store's user key
/// `(ts, id)` does.
pub trait Buffered {
    fn ts(&self) -> i64;
    fn id(&self) -> i64;
    /// Approximate bytes this value holds on the heap besides itself.
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Buffered for Impression {
    fn ts(&self) -> i64 {
        self.ts_ms
    }
    fn id(&self) -> i64 {
        self.impression_id
    }
    fn heap_bytes(&self) -> usize {
        self.device.capacity()
    }
}

impl Buffered for Play {
    fn ts(&self) -> i64 {
        self.ts_ms
    }
    fn id(&self) -> i64 {
        self.play_id
    }
}

struct Cached<T> {
    value: T,
    /// Written to the store (at a barrier, or loaded from it).
    persisted: bool,
}

/// The buffered events of one key.
#[derive(Default)]
struct Slot {
    impressions: Vec<Cached<Impression>>,
    plays: Vec<Cached<Play>>,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.impressions.is_empty() && self.plays.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Impression,
    Play,
}

/// When an entry stops being useful.
#[derive(Clone, Copy)]
struct Expiry {
    at: i64,
    key: [u8; 16],
    ts: i64,
    id: i64,
}

/// Expiries of one side in arrival order. An entry's expiry is its event
/// time plus a constant of the side, and arrivals are out of order by at most
/// the watermark bound, so this queue is nearly sorted: popping from the
/// front while due is O(1) per entry, where a heap costs a sift of
/// log(window) cache misses. An entry queued behind a later one is dropped
/// when that one is, at most the out-of-order bound late, which is harmless:
/// an expired entry can no longer match anything (see `expire`).
#[derive(Default)]
struct ExpiryQueue(VecDeque<Expiry>);

impl ExpiryQueue {
    fn push(&mut self, e: Expiry) {
        self.0.push_back(e);
    }

    fn pop_due(&mut self, watermark: i64) -> Option<Expiry> {
        if self.0.front()?.at <= watermark {
            self.0.pop_front()
        } else {
            None
        }
    }
}

/// An entry of [`Window::unpersisted`].
pub enum Entry<'a> {
    Impression(&'a Impression),
    Play(&'a Play),
}

impl Entry<'_> {
    /// Orders entries of one key as the store does: impressions and plays
    /// live in different states, each in `(ts, id)` order.
    pub fn order(&self) -> (u8, i64, i64) {
        match self {
            Entry::Impression(i) => (0, i.ts(), i.id()),
            Entry::Play(p) => (1, p.ts(), p.id()),
        }
    }
}

/// Rough per-entry and per-key costs for the memory budget: the value, the
/// expiry record, vector and hash-table slack.
const ENTRY_OVERHEAD: usize = 112;
const SLOT_OVERHEAD: usize = 96;

pub struct Window {
    slots: FxHashMap<[u8; 16], Slot>,
    impression_expiries: ExpiryQueue,
    play_expiries: ExpiryQueue,
    /// The window is complete once the watermark reaches this event time:
    /// `i64::MIN` from the start, `i64::MAX` while unknown.
    complete_from: i64,
    watermark: i64,
    /// The latest expiry of any entry held (what a spill leaves behind).
    max_expiry: i64,
    bytes: usize,
    budget: usize,
}

impl Window {
    /// An empty window, complete once the watermark reaches
    /// `complete_from`: `i64::MIN` when the store holds nothing of the
    /// instance's key groups, the latest expiry of what it holds when that is
    /// known, `i64::MAX` otherwise.
    pub fn new(budget_bytes: usize, complete_from: i64) -> Self {
        Window {
            slots: FxHashMap::default(),
            impression_expiries: ExpiryQueue::default(),
            play_expiries: ExpiryQueue::default(),
            complete_from,
            watermark: i64::MIN,
            max_expiry: i64::MIN,
            bytes: 0,
            budget: budget_bytes,
        }
    }

    /// Whether `key`'s useful entries are all here (possibly none), so that
    /// the store need not be read for it.
    pub fn knows(&self, key: &[u8; 16]) -> bool {
        self.watermark >= self.complete_from || self.slots.contains_key(key)
    }

    /// Records that everything the store holds beyond the window expires by
    /// `at` (e.g. from the source positions of the restored checkpoint).
    pub fn store_expires_by(&mut self, at: i64) {
        self.complete_from = self.complete_from.min(at);
    }

    /// Installs the entries of `key` read from the store (persisted already),
    /// with the times at which each stops being useful.
    pub fn insert_loaded(
        &mut self,
        key: [u8; 16],
        impressions: Vec<(Impression, i64)>,
        plays: Vec<(Play, i64)>,
    ) {
        let mut slot = Slot::default();
        // Expired entries whose store cleanup has not run yet can match
        // nothing; queued behind newer ones they would linger.
        let live = self.watermark;
        let impressions = impressions.into_iter().filter(|(_, at)| *at > live);
        let plays: Vec<_> = plays.into_iter().filter(|(_, at)| *at > live).collect();
        for (imp, at) in impressions {
            self.track(key, Side::Impression, &imp, at);
            slot.impressions.push(Cached {
                value: imp,
                persisted: true,
            });
        }
        for (play, at) in plays {
            self.track(key, Side::Play, &play, at);
            slot.plays.push(Cached {
                value: play,
                persisted: true,
            });
        }
        // The store returns entries in (ts, id) order already. An empty slot
        // is kept: it says "nothing in the store either" until it expires.
        self.bytes += SLOT_OVERHEAD;
        self.slots.insert(key, slot);
    }

    /// Impressions of `key` with `lo <= ts <= hi`, in `(ts, id)` order.
    pub fn impressions_between(
        &self,
        key: &[u8; 16],
        lo: i64,
        hi: i64,
    ) -> impl Iterator<Item = &Impression> {
        let list = self.slots.get(key).map_or(&[][..], |s| &s.impressions[..]);
        between(list, lo, hi)
    }

    /// Plays of `key` with `lo <= ts <= hi`, in `(ts, id)` order.
    pub fn plays_between(&self, key: &[u8; 16], lo: i64, hi: i64) -> impl Iterator<Item = &Play> {
        let list = self.slots.get(key).map_or(&[][..], |s| &s.plays[..]);
        between(list, lo, hi)
    }

    pub fn add_impression(&mut self, key: [u8; 16], imp: Impression, expires_at: i64) {
        self.track(key, Side::Impression, &imp, expires_at);
        self.max_expiry = self.max_expiry.max(expires_at);
        let slot = self.slot_for_insert(key);
        let replaced = insert_sorted(&mut slot.impressions, imp);
        self.untrack_replaced(replaced);
    }

    pub fn add_play(&mut self, key: [u8; 16], play: Play, expires_at: i64) {
        self.track(key, Side::Play, &play, expires_at);
        self.max_expiry = self.max_expiry.max(expires_at);
        let slot = self.slot_for_insert(key);
        let replaced = insert_sorted(&mut slot.plays, play);
        self.untrack_replaced(replaced);
    }

    /// The last event time passed to [`Self::expire`].
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// An event repeated with the same `(ts, id)` replaces the one held, as
    /// the store's put of the same user key would: the join must not depend
    /// on whether the first copy had reached the store. Its expiry record
    /// stays queued and finds nothing when due.
    fn untrack_replaced(&mut self, replaced_heap_bytes: Option<usize>) {
        if let Some(heap) = replaced_heap_bytes {
            self.bytes = self.bytes.saturating_sub(ENTRY_OVERHEAD + heap);
        }
    }

    fn queue(&mut self, side: Side) -> &mut ExpiryQueue {
        match side {
            Side::Impression => &mut self.impression_expiries,
            Side::Play => &mut self.play_expiries,
        }
    }

    /// Queues the entry's expiry and counts its memory.
    fn track(&mut self, key: [u8; 16], side: Side, value: &impl Buffered, at: i64) {
        let (ts, id) = (value.ts(), value.id());
        self.queue(side).push(Expiry { at, key, ts, id });
        self.bytes += ENTRY_OVERHEAD + value.heap_bytes();
    }

    fn slot_for_insert(&mut self, key: [u8; 16]) -> &mut Slot {
        let bytes = &mut self.bytes;
        self.slots.entry(key).or_insert_with(|| {
            *bytes += SLOT_OVERHEAD;
            Slot::default()
        })
    }

    /// Drops every entry whose expiry is at or below `watermark`; returns how
    /// many. Entries already in the store are left there: the store's own
    /// cleanup (timers or TTL) removes them, as it would without the window.
    pub fn expire(&mut self, watermark: i64) -> usize {
        self.watermark = self.watermark.max(watermark);
        let mut dropped = 0;
        for side in [Side::Impression, Side::Play] {
            while let Some(e) = self.queue(side).pop_due(watermark) {
                dropped += usize::from(self.remove(side, &e));
            }
        }
        dropped
    }

    fn remove(&mut self, side: Side, e: &Expiry) -> bool {
        let Some(slot) = self.slots.get_mut(&e.key) else {
            return false;
        };
        let removed = match side {
            Side::Impression => remove_entry(&mut slot.impressions, e.ts, e.id),
            Side::Play => remove_entry(&mut slot.plays, e.ts, e.id),
        };
        if slot.is_empty() {
            self.slots.remove(&e.key);
            self.bytes = self.bytes.saturating_sub(SLOT_OVERHEAD);
        }
        let Some(heap) = removed else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(ENTRY_OVERHEAD + heap);
        true
    }

    /// The entries not yet in the store, in no particular order: a scan of
    /// the whole window (a few milliseconds per barrier).
    pub fn unpersisted(&self) -> Vec<([u8; 16], Entry<'_>)> {
        let mut out = Vec::new();
        for (key, slot) in &self.slots {
            let imps = slot.impressions.iter().filter(|c| !c.persisted);
            out.extend(imps.map(|c| (*key, Entry::Impression(&c.value))));
            let plays = slot.plays.iter().filter(|c| !c.persisted);
            out.extend(plays.map(|c| (*key, Entry::Play(&c.value))));
        }
        out
    }

    /// Records that the store now holds every entry: call once the entries
    /// of [`Self::unpersisted`] are written. Returns how many were not.
    pub fn mark_persisted(&mut self) -> usize {
        let mut n = 0;
        for slot in self.slots.values_mut() {
            for c in slot.impressions.iter_mut().filter(|c| !c.persisted) {
                c.persisted = true;
                n += 1;
            }
            for c in slot.plays.iter_mut().filter(|c| !c.persisted) {
                c.persisted = true;
                n += 1;
            }
        }
        n
    }

    /// Gives back memory a burst left behind: the map and the queues keep
    /// their largest capacity otherwise, outside the budget's count.
    pub fn shrink_after_burst(&mut self) {
        if self.slots.capacity() > 4 * self.slots.len().max(1024) {
            self.slots.shrink_to(2 * self.slots.len());
        }
        for q in [&mut self.impression_expiries, &mut self.play_expiries] {
            if q.0.capacity() > 4 * q.0.len().max(1024) {
                q.0.shrink_to(2 * q.0.len());
            }
        }
    }

    pub fn over_budget(&self) -> bool {
        self.bytes > self.budget
    }

    /// Forgets everything; call after [`Self::mark_persisted`]. From now on a
    /// missing key must be read from the store.
    pub fn evict_all(&mut self) {
        debug_assert!(
            self.unpersisted().is_empty(),
            "evicting unpersisted entries"
        );
        self.slots = FxHashMap::default();
        self.impression_expiries = ExpiryQueue::default();
        self.play_expiries = ExpiryQueue::default();
        self.complete_from = self.complete_from.max(self.max_expiry);
        self.bytes = 0;
    }

    #[cfg(test)]
    fn approximate_bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.slots
            .values()
            .map(|s| s.impressions.len() + s.plays.len())
            .sum()
    }
}

fn between<T: Buffered>(list: &[Cached<T>], lo: i64, hi: i64) -> impl Iterator<Item = &T> {
    let start = list.partition_point(|c| c.value.ts() < lo);
    list[start..]
        .iter()
        .take_while(move |c| c.value.ts() <= hi)
        .map(|c| &c.value)
}

/// Inserts in `(ts, id)` order; events arrive nearly in time order, so the
/// search usually ends at the tail.
/// Returns the heap bytes of an entry with the same `(ts, id)` that the new
/// one replaced.
fn insert_sorted<T: Buffered>(list: &mut Vec<Cached<T>>, value: T) -> Option<usize> {
    if list.len() == list.capacity() && list.len() < 4 {
        // Most keys hold one or two events: `push` would reserve four.
        list.reserve_exact(1);
    }
    let k = (value.ts(), value.id());
    let at = if list.last().is_none_or(|c| (c.value.ts(), c.value.id()) < k) {
        list.len()
    } else {
        list.partition_point(|c| (c.value.ts(), c.value.id()) < k)
    };
    let fresh = Cached {
        value,
        persisted: false,
    };
    match list.get_mut(at) {
        Some(c) if (c.value.ts(), c.value.id()) == k => {
            let old = std::mem::replace(c, fresh);
            Some(old.value.heap_bytes())
        }
        _ => {
            list.insert(at, fresh);
            None
        }
    }
}

/// Removes the entry `(ts, id)`; returns its heap bytes if it was there.
fn remove_entry<T: Buffered>(list: &mut Vec<Cached<T>>, ts: i64, id: i64) -> Option<usize> {
    let at = list.partition_point(|c| (c.value.ts(), c.value.id()) < (ts, id));
    let c = list.get(at)?;
    if (c.value.ts(), c.value.id()) != (ts, id) {
        return None;
    }
    Some(list.remove(at).value.heap_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(id: i64, ts: i64) -> Impression {
        Impression {
            impression_id: id,
            profile_id: 1,
            title_id: 2,
            ts_ms: ts,
            row: 0,
            rank: 0,
            device: "tv".into(),
        }
    }

    #[test]
    fn probes_see_entries_in_time_order_and_expiry_drops_them() {
        let mut w = Window::new(1 << 20, i64::MIN);
        let k = [1u8; 16];
        // Arrival order, out of order by up to 100 ms.
        for (id, ts) in [(1, 100), (3, 300), (2, 200), (4, 200), (5, 900)] {
            w.add_impression(k, imp(id, ts), ts + 1000);
        }
        let ids: Vec<i64> = w
            .impressions_between(&k, 150, 300)
            .map(|i| i.impression_id)
            .collect();
        assert_eq!(ids, vec![2, 4, 3]);
        assert_eq!(w.expire(1100), 1, "the first one is due");
        // 2 and 4 are due at 1200 but queued behind 3 (due at 1300): they go
        // with it, at most the out-of-order bound late.
        assert_eq!(w.expire(1200), 0);
        assert_eq!(w.expire(1300), 3);
        let left: Vec<i64> = w
            .impressions_between(&k, i64::MIN, i64::MAX)
            .map(|i| i.impression_id)
            .collect();
        assert_eq!(left, vec![5]);
        assert!(w.knows(&[9u8; 16]), "a complete window knows every key");
        assert_eq!(w.expire(1900), 1);
        assert_eq!(w.entries(), 0);
        assert_eq!(w.approximate_bytes(), 0, "every byte accounted back");
    }

    #[test]
    fn after_a_spill_keys_are_unknown_until_everything_spilled_expired() {
        let mut w = Window::new(1 << 20, i64::MIN);
        let (a, b) = ([1u8; 16], [2u8; 16]);
        w.add_impression(a, imp(1, 10), 1010);
        w.mark_persisted();
        w.evict_all();
        assert!(!w.knows(&a) && !w.knows(&b));
        w.expire(1009);
        assert!(!w.knows(&b));
        w.expire(1010);
        assert!(w.knows(&b), "everything in the store has expired");
    }

    #[test]
    fn a_restored_window_is_complete_once_the_restored_events_expired() {
        let mut w = Window::new(1 << 20, i64::MAX);
        assert!(!w.knows(&[1u8; 16]));
        w.store_expires_by(5000);
        w.expire(4999);
        assert!(!w.knows(&[1u8; 16]));
        w.expire(5000);
        assert!(w.knows(&[1u8; 16]));
    }

    #[test]
    fn persist_hands_over_each_entry_once_and_eviction_makes_keys_unknown() {
        let mut w = Window::new(1 << 20, i64::MIN);
        let (a, b) = ([1u8; 16], [2u8; 16]);
        w.add_impression(a, imp(1, 10), 100);
        w.add_impression(b, imp(2, 20), 100);
        let mut seen: Vec<([u8; 16], i64)> = w
            .unpersisted()
            .into_iter()
            .map(|(k, e)| (k, e.order().2))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![(a, 1), (b, 2)]);
        assert_eq!(w.mark_persisted(), 2);
        w.add_impression(a, imp(3, 30), 100);
        let again: Vec<i64> = w.unpersisted().iter().map(|(_, e)| e.order().2).collect();
        assert_eq!(again, vec![3], "only the new entry");
        assert_eq!(w.mark_persisted(), 1);
        w.evict_all();
        assert!(!w.knows(&a));
        w.insert_loaded(a, vec![(imp(1, 10), 100)], vec![]);
        assert!(w.knows(&a));
        assert!(
            w.unpersisted().is_empty(),
            "loaded entries are in the store"
        );
    }

    #[test]
    fn a_repeated_event_replaces_the_one_held() {
        let mut w = Window::new(1 << 20, i64::MIN);
        let k = [1u8; 16];
        w.add_impression(k, imp(1, 10), 100);
        let bytes = w.approximate_bytes();
        w.mark_persisted();
        w.add_impression(k, imp(1, 10), 100);
        assert_eq!(w.impressions_between(&k, 0, 100).count(), 1);
        assert_eq!(w.approximate_bytes(), bytes);
        assert_eq!(w.unpersisted().len(), 1, "the new copy goes to the store");
        w.add_impression(k, imp(1, 10), 100);
        assert_eq!(w.unpersisted().len(), 1);
        assert_eq!(w.expire(100), 1);
        assert_eq!((w.entries(), w.approximate_bytes()), (0, 0));
        assert_eq!(w.mark_persisted(), 0);
    }

    #[test]
    fn loading_skips_entries_already_expired() {
        let mut w = Window::new(1 << 20, i64::MAX);
        w.expire(500);
        let k = [1u8; 16];
        w.insert_loaded(k, vec![(imp(1, 10), 400), (imp(2, 450), 900)], vec![]);
        let ids: Vec<i64> = w
            .impressions_between(&k, i64::MIN, i64::MAX)
            .map(|i| i.impression_id)
            .collect();
        assert_eq!(ids, vec![2]);
        assert!(w.knows(&k));
    }

    #[test]
    fn an_entry_expired_before_the_barrier_is_never_persisted() {
        let mut w = Window::new(1 << 20, i64::MIN);
        w.add_impression([1u8; 16], imp(1, 10), 100);
        w.add_impression([1u8; 16], imp(2, 500), 600);
        assert_eq!(w.expire(100), 1);
        let left: Vec<i64> = w.unpersisted().iter().map(|(_, e)| e.order().2).collect();
        assert_eq!(left, vec![2]);
        assert_eq!(w.mark_persisted(), 1);
    }
}
