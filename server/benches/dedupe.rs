//! The de-duplication window at its bound: reserving and confirming ids when the
//! table already holds `[dedupe] max_ids` of them (every new id pushes the oldest out),
//! one request of 50 ids at a time, as ingest and the relay use it.
//! Run with `make bench` or `cargo bench -p tracking-server --bench dedupe`
//! (BENCH_IDS=N ids, BENCH_MAX_IDS=N window bound).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tracking_server::dedupe::{Dedupe, Seen};
use uuid::Uuid;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

fn main() {
    let max_ids = env_or("BENCH_MAX_IDS", 1_000_000);
    let ids = env_or("BENCH_IDS", 2_000_000);
    let dedupe = Dedupe::new(Duration::from_secs(3600), max_ids);
    let before = rss_kib();
    let request = |n: u64| -> Vec<Uuid> {
        (0..50).map(|i| Uuid::from_u128(u128::from(n * 50 + i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))).collect()
    };
    // Fill the window to its bound.
    for n in 0..(max_ids as u64 / 50) {
        let batch = request(n);
        assert!(dedupe.reserve_all(batch.iter().copied()).iter().all(|s| *s == Seen::New));
        dedupe.confirm(&batch);
    }
    let filled_kib = rss_kib().saturating_sub(before);
    let start = Instant::now();
    let first = max_ids as u64 / 50;
    for n in first..first + ids as u64 / 50 {
        let batch = request(n);
        black_box(dedupe.reserve_all(batch.iter().copied()));
        dedupe.confirm(&batch);
    }
    let secs = start.elapsed().as_secs_f64();
    println!("de-duplication window at its bound ({max_ids} ids), requests of 50 ids");
    println!("  reserve + confirm: {:>6.0} ns per id ({:.0} ids/s)", secs * 1e9 / ids as f64, ids as f64 / secs);
    println!(
        "  memory for the full window: {:.0} MiB, {:.0} bytes per id",
        filled_kib as f64 / 1024.0,
        filled_kib as f64 * 1024.0 / max_ids as f64
    );
    println!("  reproduce: cargo bench -p tracking-server --bench dedupe   (BENCH_IDS, BENCH_MAX_IDS)");
}
