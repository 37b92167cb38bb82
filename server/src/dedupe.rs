//! De-duplication of events by id over a time window.

use std::collections::{HashMap, VecDeque};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reserved by a request whose events are not yet durable.
    Pending,
    Stored,
}

/// Remembers event ids for `window` (at most `max_ids`). An id is reserved before its
/// event is appended to the write-ahead log and confirmed or released after, so a
/// failed append never turns the client's retry into a "duplicate".
///
/// Memory is bounded by `max_ids` in both the id table and the expiry order (which
/// forgets released ids' places when it grows past twice the table, as it does in a
/// storm of 503s and retries): about 150 bytes an id at most.
pub struct Dedupe {
    window: Duration,
    max_ids: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ids: HashMap<Uuid, (State, Instant)>,
    order: VecDeque<(Uuid, Instant)>,
}

impl Dedupe {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        Dedupe { window, max_ids: max_ids.max(1), inner: Mutex::new(Inner::default()) }
    }

    /// Reserves `id` unless it was seen within the window.
    pub fn reserve(&self, id: Uuid) -> Seen {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(now, self.window, self.max_ids);
        if inner.ids.contains_key(&id) {
            return Seen::Duplicate;
        }
        inner.ids.insert(id, (State::Pending, now));
        inner.order.push_back((id, now));
        inner.compact(self.max_ids);
        Seen::New
    }

    /// Marks reserved ids as stored.
    pub fn confirm(&self, ids: &[Uuid]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if let Some(entry) = inner.ids.get_mut(id) {
                entry.0 = State::Stored;
            }
        }
    }

    /// Forgets reserved ids whose events could not be stored.
    pub fn release(&self, ids: &[Uuid]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            if matches!(inner.ids.get(id), Some((State::Pending, _))) {
                inner.ids.remove(id);
            }
        }
    }

    /// Remembers an id already stored (rebuilding the window from the log at start).
    pub fn remember_stored(&self, id: Uuid) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.expire(now, self.window, self.max_ids);
        if inner.ids.insert(id, (State::Stored, now)).is_none() {
            inner.order.push_back((id, now));
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops the places of ids that are no longer remembered (released ones), once the
    /// order holds twice what the table does: amortized O(1) a reservation.
    fn compact(&mut self, max_ids: usize) {
        if self.order.len() > 2 * self.ids.len().max(max_ids.min(1024)) {
            let ids = &self.ids;
            self.order.retain(|(id, at)| ids.get(id).is_some_and(|(_, t)| t == at));
        }
    }

    fn expire(&mut self, now: Instant, window: Duration, max_ids: usize) {
        while let Some((id, at)) = self.order.front() {
            let too_old = now.duration_since(*at) > window;
            let too_many = self.ids.len() >= max_ids;
            if !too_old && !too_many {
                break;
            }
            // A released id may have been re-reserved later: only remove the entry
            // this queue slot belongs to.
            if self.ids.get(id).is_some_and(|(_, t)| t == at) {
                self.ids.remove(id);
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
