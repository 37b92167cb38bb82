//! WAL behaviour against real files in temporary directories.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

fn config(dir: &Path, segment_bytes: u64) -> WalConfig {
    WalConfig { dir: dir.to_path_buf(), segment_bytes, ..WalConfig::default() }
}

fn payload(tag: &str, i: u64) -> Vec<u8> {
    format!("{tag}-{i:06}-payload").into_bytes()
}

/// Segment files on disk, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "wal")).collect();
    v.sort();
    v
}

/// Everything committed from `from`, via the blocking reader.
fn read_all(wal: &Wal, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = wal.reader(from).unwrap();
    let mut out = Vec::new();
    while r.next_seq() < wal.committed_seq() {
        let batch = r.read_batch_blocking(7, Duration::from_secs(5)).unwrap();
        assert!(!batch.is_empty(), "committed records must be readable at once");
        assert!(batch.len() <= 7);
        out.extend(batch);
    }
    out
}

fn assert_seqs(records: &[(u64, Vec<u8>)], range: Range<u64>) {
    let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(seqs, range.collect::<Vec<_>>());
}

#[test]
fn submitted_appends_are_numbered_in_order_and_each_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    // Several in flight at once: each waits for its own outcome, in any order.
    let pending: Vec<Appending> =
        (0..10u64).map(|i| wal.submit_blocking(vec![payload("s", 2 * i), payload("s", 2 * i + 1)]).unwrap()).collect();
    let ranges: Vec<Range<u64>> = pending.into_iter().rev().map(|p| p.wait().unwrap()).collect();
    assert_eq!(ranges, (0..10u64).rev().map(|i| 2 * i..2 * i + 2).collect::<Vec<_>>());
    let all = read_all(&wal, 0);
    assert_seqs(&all, 0..20);
    assert!(all.iter().all(|(seq, p)| *p == payload("s", *seq)));
    assert_eq!(wal.submit_blocking(Vec::new()).unwrap().wait().unwrap(), 20..20, "nothing to append is answered at once");
    wal.shutdown();
    assert!(matches!(wal.submit_blocking(vec![b"late".to_vec()]), Err(WalError::Closed)));
}

#[test]
fn append_and_read_back_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    let mut next = 0;
    for batch in [1u64, 3, 7, 2, 20, 1, 16] {
        let recs = (next..next + batch).map(|i| payload("a", i)).collect();
        let r = wal.append_blocking(recs).unwrap();
        assert_eq!(r, next..next + batch);
        next += batch;
    }
    assert_eq!(wal.committed_seq(), 50);
    // 50 records of 16 + 16 bytes at 200 bytes per segment: several segments,
    // one of them written by a single 20-record append.
    let files = segment_files(tmp.path());
    assert!(files.len() >= 8, "{} segments", files.len());
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 200);
    }
    assert_eq!(files[0].file_name().unwrap().to_str().unwrap(), "00000000000000000000.wal");
    let total: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    assert_eq!(wal.size_bytes(), total);

    let all = read_all(&wal, 0);
    assert_seqs(&all, 0..50);
    for (seq, p) in &all {
        assert_eq!(p, &payload("a", *seq));
    }
    // Starting in the middle of a segment.
    let tail = read_all(&wal, 37);
    assert_seqs(&tail, 37..50);
    assert_eq!(tail[0].1, payload("a", 37));
    // At the end: nothing yet, and no error.
    let mut r = wal.reader(50).unwrap();
    assert!(r.read_batch_blocking(10, Duration::from_millis(20)).unwrap().is_empty());
}

#[test]
fn sequence_numbers_continue_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(config(tmp.path(), 300)).unwrap();
        for i in 0..12 {
            assert_eq!(wal.append_blocking(vec![payload("b", i)]).unwrap(), i..i + 1);
        }
        wal.shutdown();
        assert!(matches!(wal.append_blocking(vec![b"late".to_vec()]), Err(WalError::Closed)));
    }
    let wal = Wal::open(config(tmp.path(), 300)).unwrap();
    assert_eq!(wal.committed_seq(), 12);
    assert_eq!(wal.first_seq(), 0);
    let r = wal.append_blocking(vec![payload("b", 12), payload("b", 13)]).unwrap();
    assert_eq!(r, 12..14);
    drop(wal);
    // Dropping the last handle also shuts down cleanly and releases the lock.
    let wal = Wal::open(config(tmp.path(), 300)).unwrap();
    let all = read_all(&wal, 0);
    assert_seqs(&all, 0..14);
    for (seq, p) in &all {
        assert_eq!(p, &payload("b", *seq));
    }
}

/// Writes 0..n, damages the last segment with `damage`, reopens and checks that
/// exactly `expect_kept` records survive and appends continue right after them.
fn torn_tail_case(damage: impl FnOnce(&Path), n: u64, expect_kept: u64) {
    let tmp = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(config(tmp.path(), 400)).unwrap();
        for i in 0..n {
            wal.append_blocking(vec![payload("c", i)]).unwrap();
        }
    }
    let files = segment_files(tmp.path());
    assert!(files.len() >= 2, "the case needs several segments");
    let last = files.last().unwrap();
    damage(last);
    let before = fs::metadata(last).unwrap().len();

    let wal = Wal::open(config(tmp.path(), 400)).unwrap();
    assert_eq!(wal.committed_seq(), expect_kept);
    let after = fs::metadata(last).unwrap().len();
    assert!(after < before, "tail cut: {before} -> {after}");
    let r = wal.append_blocking(vec![payload("new", 0), payload("new", 1)]).unwrap();
    assert_eq!(r, expect_kept..expect_kept + 2);
    let all = read_all(&wal, 0);
    assert_seqs(&all, 0..expect_kept + 2);
    for (seq, p) in &all[..expect_kept as usize] {
        assert_eq!(p, &payload("c", *seq));
    }
    assert_eq!(all[expect_kept as usize].1, payload("new", 0));
    assert_eq!(all[expect_kept as usize + 1].1, payload("new", 1));
    drop(wal);
    // And the repaired log reopens clean.
    let wal = Wal::open(config(tmp.path(), 400)).unwrap();
    assert_eq!(wal.committed_seq(), expect_kept + 2);
}

#[test]
fn torn_tail_cut_mid_record_is_truncated_at_reopen() {
    torn_tail_case(
        |last| {
            let f = OpenOptions::new().write(true).open(last).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len - 5).unwrap();
        },
        30,
        29,
    );
}

#[test]
fn flipped_byte_in_last_record_is_truncated_at_reopen() {
    torn_tail_case(
        |last| {
            let mut bytes = fs::read(last).unwrap();
            let n = bytes.len();
            bytes[n - 3] ^= 0x40;
            fs::write(last, bytes).unwrap();
        },
        30,
        29,
    );
}

#[test]
fn zero_filled_tail_is_truncated_at_reopen() {
    // What a crash after the size grew but before the data landed can leave.
    torn_tail_case(
        |last| {
            let f = OpenOptions::new().write(true).open(last).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len + 100).unwrap();
        },
        30,
        30,
    );
}

#[test]
fn corruption_in_an_older_segment_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(config(tmp.path(), 200)).unwrap();
        for i in 0..30 {
            wal.append_blocking(vec![payload("d", i)]).unwrap();
        }
    }
    let first = &segment_files(tmp.path())[0];
    let mut bytes = fs::read(first).unwrap();
    bytes[20] ^= 0x01;
    fs::write(first, bytes).unwrap();
    match Wal::open(config(tmp.path(), 200)) {
        Err(WalError::Corrupt { path, offset, .. }) => {
            assert_eq!(&path, first);
            assert_eq!(offset, 0);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn interrupted_segment_removal_is_completed_at_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(config(tmp.path(), 200)).unwrap();
        for i in 0..30 {
            wal.append_blocking(vec![payload("e", i)]).unwrap();
        }
    }
    // A crash in remove_before persisted the removal of the second segment only.
    let files = segment_files(tmp.path());
    assert!(files.len() >= 4);
    fs::remove_file(&files[1]).unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    assert!(!files[0].exists());
    let first = wal.first_seq();
    assert_eq!(segment_files(tmp.path())[0].file_name(), files[2].file_name());
    assert_eq!(wal.committed_seq(), 30);
    assert_seqs(&read_all(&wal, first), first..30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_get_contiguous_ranges_and_readers_see_each_once() {
    const TASKS: u64 = 50;
    const APPENDS: u64 = 100;
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 16 << 10)).unwrap();

    // A reader running alongside the appenders.
    let mut reader = wal.reader(0).unwrap();
    let reader_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        while (seen.len() as u64) < TASKS * APPENDS * 2 {
            let batch = reader.read_batch(500, Duration::from_secs(10)).await.unwrap();
            assert!(!batch.is_empty(), "reader starved");
            seen.extend(batch);
        }
        seen
    });

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move {
            let mut ranges = Vec::new();
            for i in 0..APPENDS {
                let recs = vec![format!("t{t}-i{i}-r0").into_bytes(), format!("t{t}-i{i}-r1").into_bytes()];
                let r = wal.append(recs).await.unwrap();
                assert_eq!(r.end - r.start, 2);
                // Acknowledged means committed.
                assert!(wal.committed_seq() >= r.end);
                ranges.push((t, i, r));
            }
            ranges
        }));
    }
    let mut expected: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut ranges = Vec::new();
    for task in tasks {
        for (t, i, r) in task.await.unwrap() {
            expected.insert(r.start, format!("t{t}-i{i}-r0").into_bytes());
            expected.insert(r.start + 1, format!("t{t}-i{i}-r1").into_bytes());
            ranges.push(r);
        }
    }
    // Distinct and contiguous: sorted, they tile 0..N exactly.
    ranges.sort_by_key(|r| r.start);
    let mut at = 0;
    for r in &ranges {
        assert_eq!(r.start, at);
        at = r.end;
    }
    assert_eq!(at, TASKS * APPENDS * 2);

    let seen = reader_task.await.unwrap();
    assert_seqs(&seen, 0..TASKS * APPENDS * 2);
    for (seq, p) in &seen {
        assert_eq!(&expected[seq], p, "record {seq}");
    }

    let stats = wal.stats();
    assert_eq!(stats.appends, TASKS * APPENDS);
    assert_eq!(stats.records, TASKS * APPENDS * 2);
    assert!(stats.groups < stats.appends, "group commit must group under concurrency: {stats:?}");
    // Fsync policy: one fsync per group, plus one per segment rotation.
    let rotations = segment_files(tmp.path()).len() as u64 - 1;
    assert_eq!(stats.fsyncs, stats.groups + rotations, "{stats:?}");
}

#[test]
fn group_commit_answers_all_pending_requests_with_one_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    let before = wal.stats();
    // Hold the writer so the requests pile up, as under load.
    let gate = lock(&wal.shared().gate);
    let pending: Vec<_> = (0..20).map(|i| wal.submit_for_test(vec![payload("g", i)]).unwrap()).collect();
    drop(gate);
    let ranges: Vec<_> = pending.into_iter().map(|rx| rx.blocking_recv().unwrap().unwrap()).collect();
    // Queue order is sequence order.
    for (i, r) in ranges.iter().enumerate() {
        assert_eq!(*r, i as u64..i as u64 + 1);
    }
    let after = wal.stats();
    assert_eq!(after.appends - before.appends, 20);
    assert_eq!(after.groups - before.groups, 1, "{after:?}");
    assert_eq!(after.fsyncs - before.fsyncs, 1, "{after:?}");
}

#[test]
fn remove_before_deletes_only_fully_consumed_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    for i in 0..40 {
        wal.append_blocking(vec![payload("r", i)]).unwrap();
    }
    let files = segment_files(tmp.path());
    let firsts: Vec<u64> = files.iter().map(|f| record::parse_segment_name(f.file_name().unwrap().to_str().unwrap()).unwrap()).collect();
    assert!(firsts.len() >= 5);
    // A reader parked in the first segment before anything is removed.
    let mut early = wal.reader(0).unwrap();

    // One record short of the end of segment 2: segments 0 and 1 go, 2 stays.
    let cut = firsts[3] - 1;
    let size_before = wal.size_bytes();
    assert_eq!(wal.remove_before(cut).unwrap(), 2);
    assert!(!files[0].exists() && !files[1].exists() && files[2].exists());
    assert_eq!(wal.first_seq(), firsts[2]);
    let removed_bytes: u64 = (size_before - wal.size_bytes()) as u64;
    assert_eq!(removed_bytes, firsts[2] * 32, "16-byte header + 16-byte payload each");
    // Nothing more to remove at the same point.
    assert_eq!(wal.remove_before(cut).unwrap(), 0);

    match wal.reader(firsts[2] - 1) {
        Err(WalError::Truncated { requested, first }) => {
            assert_eq!((requested, first), (firsts[2] - 1, firsts[2]))
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert_seqs(&read_all(&wal, firsts[2]), firsts[2]..40);

    // The early reader finishes its open segment, then finds the next one gone.
    let got = early.read_batch_blocking(1000, Duration::from_secs(1)).unwrap();
    assert_seqs(&got, 0..firsts[1]);
    assert!(matches!(early.read_batch_blocking(1000, Duration::from_secs(1)), Err(WalError::Truncated { .. })));

    // Far ahead (and beyond committed): everything but the active segment.
    let n = firsts.len();
    assert_eq!(wal.remove_before(u64::MAX).unwrap(), n - 3);
    let left = segment_files(tmp.path());
    assert_eq!(left, vec![files[n - 1].clone()]);
    assert_eq!(wal.first_seq(), firsts[n - 1]);
    assert_eq!(wal.size_bytes(), fs::metadata(&left[0]).unwrap().len());
    // The log keeps going, and survives a reopen with the old segments gone.
    assert_eq!(wal.append_blocking(vec![payload("r", 40)]).unwrap(), 40..41);
    drop(wal);
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    assert_eq!((wal.first_seq(), wal.committed_seq()), (firsts[n - 1], 41));
    assert_seqs(&read_all(&wal, firsts[n - 1]), firsts[n - 1]..41);
}

#[test]
fn full_when_max_bytes_is_reached_and_again_after_removal() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 320);
    cfg.max_bytes = 1000;
    let wal = Wal::open(cfg).unwrap();
    let mut written = 0;
    let err = loop {
        match wal.append_blocking(vec![payload("f", written)]) {
            Ok(r) => {
                assert_eq!(r.start, written);
                written += 1;
            }
            Err(e) => break e,
        }
        assert!(written < 1000, "never full");
    };
    assert!(matches!(err, WalError::Full), "{err:?}");
    assert_eq!(written, 1000 / 32);
    assert!(wal.size_bytes() <= 1000);
    assert!(wal.stats().full >= 1);
    // A request over the cap in one go is refused whole.
    assert!(matches!(wal.append_blocking((0..40).map(|i| payload("f", i)).collect()), Err(WalError::Full)));
    // Sinks catch up, segments go, room again, numbering continues.
    assert!(wal.remove_before(wal.committed_seq()).unwrap() >= 1);
    assert_eq!(wal.append_blocking(vec![payload("f", written)]).unwrap(), written..written + 1);
}

#[test]
fn full_when_the_queue_is_full() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.queue_capacity = 2;
    let wal = Wal::open(cfg).unwrap();
    let gate = lock(&wal.shared().gate);
    let mut pending = Vec::new();
    let mut full = 0;
    // The writer holds at most one request (waiting at the gate), the queue two more.
    for i in 0..4 {
        match wal.submit_for_test(vec![payload("q", i)]) {
            Ok(rx) => pending.push(rx),
            Err(WalError::Full) => full += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(pending.len() >= 2 && pending.len() <= 3, "{}", pending.len());
    assert!(full >= 1);
    assert_eq!(wal.stats().full, full);
    drop(gate);
    let n = pending.len() as u64;
    for (i, rx) in pending.into_iter().enumerate() {
        assert_eq!(rx.blocking_recv().unwrap().unwrap(), i as u64..i as u64 + 1);
    }
    assert_eq!(wal.append_blocking(vec![b"x".to_vec()]).unwrap(), n..n + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Holding the writer's gate across awaits is the point of the test.
#[allow(clippy::await_holding_lock)]
async fn full_queue_never_blocks_the_async_caller() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.queue_capacity = 1;
    let wal = Wal::open(cfg).unwrap();
    let gate = lock(&wal.shared().gate);
    let mut results = Vec::new();
    for _ in 0..3 {
        // With the writer held, an append either queues (and stays pending) or
        // fails Full immediately; it must never park the task on the queue.
        let fut = wal.append(vec![b"y".to_vec()]);
        results.push(tokio::time::timeout(Duration::from_millis(50), fut).await);
    }
    drop(gate);
    assert!(results.iter().any(|r| matches!(r, Ok(Err(WalError::Full)))));
}

#[test]
fn checkpoints_round_trip_and_survive_a_leftover_tmp_file() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Pos {
        seq: u64,
        file_len: u64,
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("checkpoints");
    let cp = Checkpoints::open(dir.clone()).unwrap();
    assert_eq!(cp.load::<Pos>("tracking_log").unwrap(), None);
    cp.save("tracking_log", &Pos { seq: 7, file_len: 100 }).unwrap();
    cp.save("tracking_log", &Pos { seq: 9, file_len: 180 }).unwrap();
    assert_eq!(cp.load::<Pos>("tracking_log").unwrap(), Some(Pos { seq: 9, file_len: 180 }));
    // A crash between writing the tmp file and renaming it.
    let tmp_file = dir.join("tracking_log.json.tmp");
    fs::write(&tmp_file, b"{\"seq\": 12, \"file_le").unwrap();
    assert_eq!(cp.load::<Pos>("tracking_log").unwrap(), Some(Pos { seq: 9, file_len: 180 }));
    drop(cp);
    let cp = Checkpoints::open(dir.clone()).unwrap();
    assert!(!tmp_file.exists(), "leftover tmp removed at open");
    assert_eq!(cp.load::<Pos>("tracking_log").unwrap(), Some(Pos { seq: 9, file_len: 180 }));
    fs::write(&tmp_file, b"junk").unwrap();
    cp.save("tracking_log", &Pos { seq: 10, file_len: 200 }).unwrap();
    assert_eq!(Checkpoints::open(dir.clone()).unwrap().load::<Pos>("tracking_log").unwrap(), Some(Pos { seq: 10, file_len: 200 }));
    // Names are single path components; undecodable content is an error, not None.
    assert!(matches!(cp.save("../x", &1), Err(WalError::InvalidName(_))));
    fs::write(dir.join("broken.json"), b"{").unwrap();
    assert!(matches!(cp.load::<Pos>("broken"), Err(WalError::Checkpoint { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_async_reader_wakes_when_an_append_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    wal.append(vec![b"first".to_vec()]).await.unwrap();
    let mut reader = wal.reader(1).unwrap();
    let started = Instant::now();
    let waiter = tokio::spawn(async move {
        let batch = reader.read_batch(10, Duration::from_secs(30)).await.unwrap();
        (batch, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!waiter.is_finished(), "nothing to read yet");
    wal.append(vec![b"second".to_vec(), b"third".to_vec()]).await.unwrap();
    let (batch, waited) = tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("reader woke").unwrap();
    assert_eq!(batch, vec![(1, b"second".to_vec()), (2, b"third".to_vec())]);
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(5));

    // And the timeout path returns empty.
    let mut idle = wal.reader(3).unwrap();
    let t = Instant::now();
    assert!(idle.read_batch(10, Duration::from_millis(60)).await.unwrap().is_empty());
    assert!(t.elapsed() >= Duration::from_millis(60));
}

#[test]
fn blocked_blocking_reader_wakes_when_an_append_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    let mut reader = wal.reader(0).unwrap();
    let t = std::thread::spawn(move || {
        let started = Instant::now();
        let batch = reader.read_batch_blocking(10, Duration::from_secs(30)).unwrap();
        (batch, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(150));
    assert!(!t.is_finished());
    wal.append_blocking(vec![b"wake".to_vec()]).unwrap();
    let (batch, waited) = t.join().unwrap();
    assert_eq!(batch, vec![(0, b"wake".to_vec())]);
    assert!(waited < Duration::from_secs(5));
    let mut idle = wal.reader(1).unwrap();
    let started = Instant::now();
    assert!(idle.read_batch_blocking(1, Duration::from_millis(60)).unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_async_read_does_not_lose_records() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    wal.append((0..1000).map(|i| payload("z", i)).collect()).await.unwrap();
    let mut reader = wal.reader(0).unwrap();
    // Poll once (starting the blocking read) and drop the future.
    {
        let mut fut = std::pin::pin!(reader.read_batch(1000, Duration::from_secs(1)));
        std::future::poll_fn(|cx| {
            assert!(fut.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
    }
    // The orphaned read finishes in the background; the reader must not have moved.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(reader.next_seq(), 0);
    let batch = reader.read_batch(1000, Duration::from_secs(1)).await.unwrap();
    assert_seqs(&batch, 0..1000);
}

#[test]
fn reader_positions_outside_the_log_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    wal.append_blocking(vec![b"a".to_vec(), b"b".to_vec()]).unwrap();
    assert!(wal.reader(2).is_ok());
    assert!(matches!(wal.reader(3), Err(WalError::BeyondEnd { requested: 3, end: 2 })));
}

#[test]
fn shutdown_flushes_and_refuses_later_appends_but_readers_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.commit = CommitPolicy::None;
    let wal = Wal::open(cfg).unwrap();
    let other = wal.clone();
    wal.append_blocking(vec![b"kept".to_vec()]).unwrap();
    let fsyncs = wal.stats().fsyncs;
    assert_eq!(fsyncs, 0, "policy None does not fsync on append");
    other.shutdown();
    assert_eq!(wal.stats().fsyncs, 1, "shutdown fsyncs what was written");
    assert!(matches!(wal.append_blocking(vec![b"late".to_vec()]), Err(WalError::Closed)));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert!(matches!(rt.block_on(wal.append(vec![b"late".to_vec()])), Err(WalError::Closed)));
    assert_eq!(read_all(&wal, 0), vec![(0, b"kept".to_vec())]);
    // The directory lock is released: another open succeeds while handles live.
    let again = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    assert_eq!(again.committed_seq(), 1);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let _wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    assert!(matches!(Wal::open(config(tmp.path(), 1 << 20)), Err(WalError::Locked(_))));
}

#[test]
fn interval_policy_acknowledges_before_fsync_and_fsyncs_soon_after() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 1 << 20);
    cfg.commit = CommitPolicy::Interval(Duration::from_millis(300));
    let wal = Wal::open(cfg).unwrap();
    // Opening counts as the last sync; well inside the interval, no fsync on ack.
    wal.append_blocking(vec![b"one".to_vec()]).unwrap();
    assert_eq!(wal.committed_seq(), 1);
    assert_eq!(wal.stats().fsyncs, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while wal.stats().fsyncs == 0 {
        assert!(Instant::now() < deadline, "interval fsync never happened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(wal.stats().fsyncs, 1, "one fsync for the dirty interval, then idle");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(wal.stats().fsyncs, 1, "no fsync while clean");
}

#[test]
fn oversized_records_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 1 << 20)).unwrap();
    assert!(matches!(wal.append_blocking(vec![vec![0; MAX_RECORD_BYTES + 1]]), Err(WalError::RecordTooLarge { .. })));
    assert_eq!(wal.append_blocking(vec![]).unwrap(), 0..0);
    assert_eq!(wal.committed_seq(), 0);
}

/// The inode of a file: the same file under another name has the same one.
fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap())
}

/// A copy of the directory as a crash would leave it (the writer still running).
fn crash_copy(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Appends one 32-byte record at a time (six fill a 200-byte segment) until the log
/// has `count` records.
fn append_up_to(wal: &Wal, tag: &str, count: u64) {
    while wal.committed_seq() < count {
        wal.append_blocking(vec![payload(tag, wal.committed_seq())]).unwrap();
    }
}

#[test]
fn a_consumed_segment_is_written_over_as_the_next_one() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    append_up_to(&wal, "s", 30);
    let files = segment_files(tmp.path());
    let (first, second) = (files[0].clone(), files[1].clone());
    let (old_inode, old_len) = (inode(&first), fs::metadata(&first).unwrap().len());
    assert_eq!(old_len, 192);
    assert!(files.len() >= 5);

    // The first consumed segment is kept, a second one is deleted.
    let second_first = record::parse_segment_name(second.file_name().unwrap().to_str().unwrap()).unwrap();
    assert_eq!(wal.remove_before(second_first + 6).unwrap(), 2);
    let spare = record::spare_path(tmp.path());
    assert_eq!(inode(&spare), old_inode);
    assert!(!first.exists() && !second.exists());

    // The next rotation renames it into place and writes over it from the start.
    let before = segment_files(tmp.path()).len();
    while segment_files(tmp.path()).len() == before {
        wal.append_blocking(vec![payload("s", wal.committed_seq())]).unwrap();
    }
    let reused = segment_files(tmp.path()).last().unwrap().clone();
    assert!(!spare.exists());
    assert_eq!(inode(&reused), old_inode);
    assert_eq!(fs::metadata(&reused).unwrap().len(), old_len, "one record written over six old ones");
    let kept_from = wal.first_seq();
    assert_seqs(&read_all(&wal, kept_from), kept_from..wal.committed_seq());

    // A crash now leaves five old records, with valid checksums, after the new one:
    // recovery keeps exactly what was appended.
    let copy = tempfile::tempdir().unwrap();
    crash_copy(tmp.path(), copy.path());
    let committed = wal.committed_seq();
    {
        let recovered = Wal::open(config(copy.path(), 200)).unwrap();
        assert_eq!(recovered.committed_seq(), committed);
        let all = read_all(&recovered, kept_from);
        assert_seqs(&all, kept_from..committed);
        assert!(all.iter().all(|(seq, p)| p == &payload("s", *seq)));
        assert_eq!(fs::metadata(copy.path().join(reused.file_name().unwrap())).unwrap().len(), 32, "the old records are cut");
    }

    // Once full, the reused segment ends at its records, as readers and recovery expect.
    append_up_to(&wal, "s", committed + 6);
    assert_eq!(fs::metadata(&reused).unwrap().len(), 192);
    append_up_to(&wal, "s", 60);
    assert_seqs(&read_all(&wal, kept_from), kept_from..60);
    drop(wal);
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    assert_eq!((wal.first_seq(), wal.committed_seq()), (kept_from, 60));
    let all = read_all(&wal, kept_from);
    assert!(all.iter().all(|(seq, p)| p == &payload("s", *seq)));
}

#[test]
fn a_clean_stop_cuts_a_reused_segment_and_the_next_open_drops_the_spare() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    append_up_to(&wal, "t", 18);
    assert_eq!(wal.remove_before(12).unwrap(), 2);
    // A rotation takes the spare; one record goes into it.
    append_up_to(&wal, "t", 19);
    let reused = segment_files(tmp.path()).last().unwrap().clone();
    assert_eq!(fs::metadata(&reused).unwrap().len(), 192);
    assert_eq!(wal.remove_before(18).unwrap(), 1);
    assert!(record::spare_path(tmp.path()).exists());
    drop(wal);
    assert_eq!(fs::metadata(&reused).unwrap().len(), 32, "a clean stop leaves no old bytes");
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    assert!(!record::spare_path(tmp.path()).exists(), "a spare is not carried across opens");
    assert_eq!((wal.first_seq(), wal.committed_seq()), (18, 19));
}

#[test]
fn a_reader_left_behind_a_reused_segment_finds_it_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    append_up_to(&wal, "u", 12);
    let mut behind = wal.reader(0).unwrap();
    assert_eq!(wal.remove_before(6).unwrap(), 1);
    // Rotations take the spare and write over it before the reader reads.
    append_up_to(&wal, "u", 20);
    match behind.read_batch_blocking(100, Duration::from_secs(1)) {
        Err(WalError::Truncated { requested: 0, first: 6 }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn a_reader_at_the_end_of_a_reused_segment_reads_on_from_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(config(tmp.path(), 200)).unwrap();
    // Segment 0: five 32-byte records (160 bytes); a 64-byte one starts segment 1.
    append_up_to(&wal, "v", 5);
    wal.append_blocking(vec![vec![b'x'; 48]]).unwrap();
    let segment0 = segment_files(tmp.path())[0].clone();
    let old_inode = inode(&segment0);
    let mut reader = wal.reader(0).unwrap();
    assert_seqs(&reader.read_batch_blocking(5, Duration::from_secs(1)).unwrap(), 0..5);
    // The reader stands at segment 0's end. Its records all consumed, it becomes the
    // spare, and a rotation writes records over it, past its old 160 bytes.
    append_up_to(&wal, "v", 8);
    assert_eq!(wal.remove_before(5).unwrap(), 1);
    let reused_past_old_end = |dir: &Path| segment_files(dir).iter().any(|f| inode(f) == old_inode && fs::metadata(f).unwrap().len() > 160);
    while !reused_past_old_end(tmp.path()) {
        wal.append_blocking(vec![payload("v", wal.committed_seq())]).unwrap();
    }
    let end = wal.committed_seq();
    let mut got = Vec::new();
    while reader.next_seq() < end {
        got.extend(reader.read_batch_blocking(100, Duration::from_secs(1)).unwrap());
    }
    assert_seqs(&got, 5..end);
}
