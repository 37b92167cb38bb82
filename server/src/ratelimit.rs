//! Per-client rate limits in a table of fixed size: the first thing an ingest request
//! meets, before its body is read or a token verified.
//!
//! Each client (an IPv4 address, or an IPv6 /64: one subscriber's whole prefix) has
//! a GCRA state, its "theoretical arrival time". A client whose time has passed is
//! indistinguishable from a new one, so its slot is free for another: idle clients
//! are forgotten without a sweep. The table is open-addressed with a short probe
//! window; when every slot of the window is busy (a flood of distinct addresses), the
//! one closest to idle is taken over (that client gets a fresh burst). Memory is
//! `[limits] rate_clients` slots of 32 bytes, allocated at start, whatever arrives.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slots looked at for one client.
const PROBE: usize = 8;
/// Independent locks over the table.
const SHARDS: usize = 64;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// The client, tagged so that 0 means free.
    key: u128,
    /// Nanoseconds since the limiter started.
    tat: u64,
}

/// A per-client GCRA limiter with a bounded table.
pub struct ClientLimiter {
    shards: Vec<Mutex<Vec<Slot>>>,
    /// Nanoseconds between requests at the sustained rate.
    emission: u64,
    /// How far ahead of now a client's time may run (the burst).
    tolerance: u64,
    start: Instant,
    hasher: std::collections::hash_map::RandomState,
    /// Slots that hold a client that is not idle (roughly: updated as slots change).
    busy: AtomicU64,
}

impl ClientLimiter {
    /// `rate` requests per second sustained, `burst` (at least `rate`) at once, for up
    /// to `clients` clients tracked at a time (rounded up to fill the shards).
    pub fn new(rate: u32, burst: u32, clients: usize) -> ClientLimiter {
        let per_shard = clients.div_ceil(SHARDS).max(PROBE);
        let emission = 1_000_000_000 / u64::from(rate.max(1));
        ClientLimiter {
            shards: (0..SHARDS).map(|_| Mutex::new(vec![Slot::default(); per_shard])).collect(),
            emission,
            tolerance: emission * u64::from(burst.max(rate).max(1) - 1),
            start: Instant::now(),
            hasher: std::collections::hash_map::RandomState::new(),
            busy: AtomicU64::new(0),
        }
    }

    /// Slots in the table: the bound on tracked clients.
    pub fn capacity(&self) -> usize {
        self.shards.len() * self.shards[0].lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Bytes the table holds.
    pub fn table_bytes(&self) -> usize {
        self.capacity() * size_of::<Slot>()
    }

    /// Whether a request from `ip` may go on now; if not, how long until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, self.start.elapsed().as_nanos() as u64)
    }

    fn check_at(&self, ip: IpAddr, now: u64) -> Result<(), Duration> {
        let key = client_key(ip);

        let hash = self.hasher.hash_one(key) as usize;
        let mut shard = self.shards[hash % SHARDS].lock().unwrap_or_else(|p| p.into_inner());
        let len = shard.len();
        let base = (hash / SHARDS) % len;
        let mut found = None;
        let mut free = None;
        let mut oldest: Option<(usize, u64)> = None;
        for step in 0..PROBE {
            let i = (base + step) % len;
            let slot = shard[i];
            if slot.key == key {
                found = Some(i);
                break;
            }
            if slot.key == 0 || slot.tat <= now {
                free.get_or_insert(i);
            } else if oldest.is_none_or(|(_, tat)| slot.tat < tat) {
                oldest = Some((i, slot.tat));
            }
        }
        let (i, tat) = match found {
            Some(i) => (i, shard[i].tat.max(now)),
            None => {
                // A new client, or one forgotten: it starts with a full burst.
                let i = match (free, oldest) {
                    (Some(i), _) => {
                        if shard[i].key == 0 {
                            self.busy.fetch_add(1, Ordering::Relaxed);
                        }
                        i
                    }
                    (None, Some((i, _))) => i,
                    (None, None) => base,
                };
                (i, now)
            }
        };
        if tat - now > self.tolerance {
            return Err(Duration::from_nanos(tat - now - self.tolerance));
        }
        shard[i] = Slot { key, tat: tat + self.emission };
        Ok(())
    }

    /// Slots ever taken (an upper bound on the clients tracked).
    pub fn used_slots(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }
}

/// A client's key: IPv4 addresses whole, IPv6 by their /64.
fn client_key(ip: IpAddr) -> u128 {
    const TAG: u128 = 1 << 127;
    match ip.to_canonical() {
        IpAddr::V4(v4) => TAG | (1 << 126) | u128::from(u32::from(v4)),
        IpAddr::V6(v6) => TAG | (u128::from(v6) >> 64),
    }
}

/// The rate limit of the ingest endpoints, keyed by the client address (through the
/// trusted proxies only, as the request context takes it).
pub struct RateLimit {
    limiter: Option<ClientLimiter>,
    trusted_proxies: Vec<ipnet::IpNet>,
}

impl RateLimit {
    /// `None` limiter: no limit (`rate_per_second = 0`).
    pub fn new(limiter: Option<ClientLimiter>, trusted_proxies: Vec<ipnet::IpNet>) -> RateLimit {
        RateLimit { limiter, trusted_proxies }
    }

    /// Whether this request may go on; if not, the seconds to wait (at least 1).
    pub fn check(&self, req: &actix_web::dev::ServiceRequest) -> Result<(), u64> {
        let (Some(limiter), Some(peer)) = (&self.limiter, req.peer_addr()) else { return Ok(()) };
        let client = crate::context::client_ip(peer.ip(), req.headers(), &self.trusted_proxies);
        limiter.check(client).map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// The limiter, if there is a limit.
    pub fn limiter(&self) -> Option<&ClientLimiter> {
        self.limiter.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_the_sustained_rate() {
        let l = ClientLimiter::new(2, 5, 1000);
        let t0 = 5 * SECOND;
        for _ in 0..5 {
            assert!(l.check_at(ip("203.0.113.7"), t0).is_ok());
        }
        let wait = l.check_at(ip("203.0.113.7"), t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(l.check_at(ip("203.0.113.8"), t0).is_ok(), "another client is not affected");
        assert!(l.check_at(ip("203.0.113.7"), t0 + SECOND / 2).is_ok(), "one more after 1/rate");
        assert!(l.check_at(ip("203.0.113.7"), t0 + SECOND / 2).is_err());
        // Idle long enough: a full burst again.
        for _ in 0..5 {
            assert!(l.check_at(ip("203.0.113.7"), t0 + 10 * SECOND).is_ok());
        }
    }

    #[test]
    fn ipv6_clients_are_their_64_prefix() {
        let l = ClientLimiter::new(1, 1, 1000);
        assert!(l.check_at(ip("2001:db8:1:2::1"), SECOND).is_ok());
        assert!(l.check_at(ip("2001:db8:1:2::ffff"), SECOND).is_err(), "same /64");
        assert!(l.check_at(ip("2001:db8:1:3::1"), SECOND).is_ok());
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), client_key(ip("10.0.0.1")));
    }

    #[test]
    fn the_table_never_grows() {
        let l = ClientLimiter::new(1, 1, 4096);
        let capacity = l.capacity();
        assert!((4096..4096 + SHARDS * PROBE).contains(&capacity));
        // Far more distinct clients than slots, all active at once.
        for n in 0u32..200_000 {
            let _ = l.check_at(IpAddr::V4(n.into()), SECOND);
        }
        assert_eq!(l.capacity(), capacity);
        assert!(l.used_slots() as usize <= capacity);
        assert_eq!(l.table_bytes(), capacity * 32);
    }
}
