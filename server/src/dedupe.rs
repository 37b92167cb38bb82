//! De-duplication of events by id over a time window.

use std::collections::{hash_map, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// What the de-duplicator says about an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen in the window: reserved for this request.
    New,
    /// Already stored, or being stored by another request.
    Duplicate,
}

/// Remembers event ids for `window` (at most `max_ids`). An id is reserved before its
/// event is appended to the write-ahead log and confirmed or released after, so a
/// failed append never turns the client's retry into a "duplicate".
///
/// Memory is bounded by `max_ids` in both the id table and the expiry order (which
/// forgets released ids' places when it grows past twice the table, as it does in a
/// storm of 503s and retries): 24 bytes an id in each, 77 bytes an id with the tables'
/// spare room (`cargo bench -p tracking-server --bench dedupe` prints it).
pub struct Dedupe {
    window_ms: u64,
    max_ids: usize,
    /// Stamps are milliseconds since this.
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// When an id was reserved (ms since the epoch), shifted left once; the low bit says
/// whether its event is stored (else a request is still storing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry(u64);

impl Entry {
    fn pending(at: u64) -> Entry {
        Entry(at << 1)
    }
    fn stored(at: u64) -> Entry {
        Entry(at << 1 | 1)
    }
    fn at(self) -> u64 {
        self.0 >> 1
    }
    fn is_stored(self) -> bool {
        self.0 & 1 == 1
    }
}

#[derive(Default)]
struct Inner {
    ids: HashMap<Uuid, Entry>,
    /// Ids in reservation order with their stamp: the entry a slot belongs to has it
    /// (an id released and reserved again has a later one).
    order: VecDeque<(Uuid, u64)>,
}

impl Dedupe {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        Dedupe { window_ms, max_ids: max_ids.max(1), epoch: Instant::now(), inner: Mutex::new(Inner::default()) }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX >> 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `id` unless it was seen within the window.
    pub fn reserve(&self, id: Uuid) -> Seen {
        let now = self.now();
        self.lock().reserve(id, now, self)
    }

    /// [`Dedupe::reserve`] for each id in turn (a repeated id is a duplicate of the
    /// first), under one lock and one reading of the clock.
    pub fn reserve_all(&self, ids: impl IntoIterator<Item = Uuid>) -> Vec<Seen> {
        let now = self.now();
        let mut inner = self.lock();
        ids.into_iter().map(|id| inner.reserve(id, now, self)).collect()
    }

    /// Marks reserved ids as stored.
    pub fn confirm(&self, ids: &[Uuid]) {
        let mut inner = self.lock();
        for id in ids {
            if let Some(entry) = inner.ids.get_mut(id) {
                *entry = Entry::stored(entry.at());
            }
        }
    }

    /// Forgets reserved ids whose events could not be stored.
    pub fn release(&self, ids: &[Uuid]) {
        let mut inner = self.lock();
        for id in ids {
            if inner.ids.get(id).is_some_and(|e| !e.is_stored()) {
                inner.ids.remove(id);
            }
        }
    }

    /// Remembers an id already stored (rebuilding the window from the log at start).
    pub fn remember_stored(&self, id: Uuid) {
        let now = self.now();
        let mut inner = self.lock();
        inner.expire(now, self.window_ms, self.max_ids);
        if inner.ids.insert(id, Entry::stored(now)).is_none() {
            inner.order.push_back((id, now));
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.lock().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn reserve(&mut self, id: Uuid, now: u64, bounds: &Dedupe) -> Seen {
        self.expire(now, bounds.window_ms, bounds.max_ids);
        match self.ids.entry(id) {
            hash_map::Entry::Occupied(_) => return Seen::Duplicate,
            hash_map::Entry::Vacant(slot) => slot.insert(Entry::pending(now)),
        };
        self.order.push_back((id, now));
        self.compact(bounds.max_ids);
        Seen::New
    }

    /// Drops the places of ids that are no longer remembered (released ones), once the
    /// order holds twice what the table does: amortized O(1) a reservation.
    fn compact(&mut self, max_ids: usize) {
        if self.order.len() > 2 * self.ids.len().max(max_ids.min(1024)) {
            let ids = &self.ids;
            self.order.retain(|(id, at)| ids.get(id).is_some_and(|e| e.at() == *at));
        }
    }

    fn expire(&mut self, now: u64, window_ms: u64, max_ids: usize) {
        while let Some((id, at)) = self.order.front() {
            let too_old = now.saturating_sub(*at) > window_ms;
            let too_many = self.ids.len() >= max_ids;
            if !too_old && !too_many {
                break;
            }
            // A released id may have been reserved again since: only remove the entry
            // this slot belongs to. (Within the same millisecond the two share a stamp,
            // and the later entry goes with the earlier slot: a millisecond early.)
            if let hash_map::Entry::Occupied(entry) = self.ids.entry(*id) {
                if entry.get().at() == *at {
                    entry.remove();
                }
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn duplicates_within_the_window() {
        let d = Dedupe::new(Duration::from_secs(60), 100);
        assert_eq!(d.reserve(id(97)), Seen::New);
        assert_eq!(d.reserve(id(97)), Seen::Duplicate, "in flight counts as seen");
        d.confirm(&[id(97)]);
        assert_eq!(d.reserve(id(97)), Seen::Duplicate);
        assert_eq!(d.reserve(id(98)), Seen::New);
    }

    #[test]
    fn reserve_all_reserves_each_in_turn() {
        let d = Dedupe::new(Duration::from_secs(60), 100);
        assert_eq!(d.reserve(id(5)), Seen::New);
        assert_eq!(d.reserve_all([id(1), id(5), id(1), id(2)]), [Seen::New, Seen::Duplicate, Seen::Duplicate, Seen::New]);
        assert_eq!(d.len(), 3);
        d.release(&[id(1), id(2)]);
        assert_eq!(d.reserve_all([id(2)]), [Seen::New], "a released id is new again");
    }

    #[test]
    fn released_ids_can_be_retried() {
        let d = Dedupe::new(Duration::from_secs(60), 100);
        assert_eq!(d.reserve(id(97)), Seen::New);
        d.release(&[id(97)]);
        assert_eq!(d.reserve(id(97)), Seen::New);
        d.confirm(&[id(97)]);
        d.release(&[id(97)]);
        assert_eq!(d.reserve(id(97)), Seen::Duplicate, "stored ids are not released");
    }

    #[test]
    fn a_retry_storm_keeps_the_order_bounded() {
        let d = Dedupe::new(Duration::from_secs(3600), 100);
        // Every append fails: each id is reserved and released, again and again.
        for round in 0..1000u128 {
            let ids: Vec<Uuid> = (0..50).map(|n| id(round * 50 + n)).collect();
            for i in &ids {
                d.reserve(*i);
            }
            d.release(&ids);
        }
        let inner = d.inner.lock().unwrap();
        assert!(inner.ids.is_empty());
        assert!(inner.order.len() <= 2 * 1024 + 1, "{}", inner.order.len());
    }

    #[test]
    fn window_and_capacity() {
        let d = Dedupe::new(Duration::from_millis(30), 100);
        d.reserve(id(111));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(d.reserve(id(111)), Seen::New, "forgotten after the window");

        let d = Dedupe::new(Duration::from_secs(60), 3);
        for n in 1..=4 {
            d.reserve(id(n));
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.reserve(id(1)), Seen::New, "the oldest is forgotten first");
        assert_eq!(d.reserve(id(4)), Seen::Duplicate);
    }
}
