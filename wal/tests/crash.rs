//! Write-ahead log under a real crash (SIGKILL) and a real write failure, in child processes.
//!
//! Each test re-runs this test binary as a child (`current_exe()` with an
//! environment variable naming the role), so the failure happens to a whole
//! process and the parent checks the files it left behind.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracking_wal::{Wal, WalConfig, WalError};

const CRASH_ENV: &str = "TRACKING_WAL_CRASH_CHILD_DIR";
const FSIZE_ENV: &str = "TRACKING_WAL_FSIZE_CHILD_DIR";

fn child(test: &str, env: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]).env(env, dir).stdout(Stdio::piped()).stderr(Stdio::inherit());
    cmd
}

/// Payload of record `r` of append `i` of writer thread `t`; padded so appends
/// span segments and pages.
fn crash_payload(t: u64, i: u64, r: u64) -> Vec<u8> {
    let mut p = format!("t{t}-i{i}-r{r}-").into_bytes();
    p.resize(p.len() + ((t * 7 + i * 13 + r) % 300) as usize, b'a' + (i % 26) as u8);
    p
}

/// Child: appends from several threads until killed, printing each acknowledged
/// range only after `append_blocking` returned it.
fn crash_child(dir: &Path) -> ! {
    let wal = Wal::open(WalConfig { dir: dir.to_path_buf(), segment_bytes: 64 << 10, ..WalConfig::default() }).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                let out = std::io::stdout();
                for i in 0.. {
                    let n = 1 + (i % 5);
                    let recs = (0..n).map(|r| crash_payload(t, i, r)).collect();
                    let range = wal.append_blocking(recs).unwrap();
                    assert_eq!(range.end - range.start, n);
                    let mut out = out.lock();
                    writeln!(out, "ack {t} {i} {} {}", range.start, range.end).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    unreachable!("appenders run until killed")
}

#[test]
fn wal_kill_9_during_appends_keeps_every_acknowledged_record() {
    if let Some(dir) = std::env::var_os(CRASH_ENV) {
        crash_child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let wal_dir = tmp.path().join("wal");
    let mut child = child("wal_kill_9_during_appends_keeps_every_acknowledged_record", CRASH_ENV, &wal_dir).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // A line cut by the kill does not parse and does not count.
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() == 5 && f[0] == "ack" {
                if let (Ok(t), Ok(i), Ok(s), Ok(e)) = (f[1].parse::<u64>(), f[2].parse::<u64>(), f[3].parse::<u64>(), f[4].parse::<u64>()) {
                    acks.push((t, i, s, e));
                    let _ = tx.send(acks.len());
                }
            }
        }
        acks
    });
    // Kill mid-stream, once plenty has been acknowledged.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(n) if n >= 3000 => break,
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => panic!("child stopped: {:?}", child.try_wait()),
        }
        assert!(Instant::now() < deadline, "child too slow");
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let acks = lines.join().unwrap();
    assert!(acks.len() >= 3000);

    // Reopen (the kernel released the child's lock) and check every ack.
    let wal = Wal::open(WalConfig { dir: wal_dir.clone(), segment_bytes: 64 << 10, ..WalConfig::default() }).unwrap();
    let committed = wal.committed_seq();
    let mut reader = wal.reader(0).unwrap();
    let mut records = HashMap::new();
    while reader.next_seq() < committed {
        for (seq, p) in reader.read_batch_blocking(10_000, Duration::from_secs(1)).unwrap() {
            assert_eq!(seq as usize, records.len(), "no gaps");
            records.insert(seq, p);
        }
    }
    for &(t, i, start, end) in &acks {
        assert!(end <= committed, "acknowledged {start}..{end}, log ends at {committed}");
        for (r, seq) in (start..end).enumerate() {
            assert_eq!(records[&seq], crash_payload(t, i, r as u64), "record {seq} of append {t}/{i}");
        }
    }
    // Several segments were in play, so the kill met rotations too.
    let segments =
        std::fs::read_dir(&wal_dir).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wal")).count();
    assert!(segments > 1, "{segments} segments");
    // And the log goes on from where it was cut.
    assert_eq!(wal.append_blocking(vec![b"after".to_vec()]).unwrap(), committed..committed + 1);
}

fn set_fsize_limit(soft: libc::rlim_t) {
    // SAFETY: plain libc calls with a valid, initialised rlimit.
    unsafe {
        let mut lim = std::mem::zeroed::<libc::rlimit>();
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = soft.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

/// Child: a failed write (the file-size limit stands in for a full disk) is
/// reported as `Io`, leaves nothing behind, and the log works again after.
fn fsize_child(dir: &Path) {
    // SAFETY: ignoring SIGXFSZ makes an over-limit write fail with EFBIG instead
    // of killing the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let rec = |tag: &str, i: u64| {
        let mut p = format!("{tag}-{i}-").into_bytes();
        p.resize(100, b'x');
        p
    };
    let wal = Wal::open(WalConfig { dir: dir.to_path_buf(), segment_bytes: 1 << 20, ..WalConfig::default() }).unwrap();
    let first = wal.append_blocking((0..10).map(|i| rec("ok", i)).collect()).unwrap();
    assert_eq!(first, 0..10); // 10 x 116 bytes = 1160

    set_fsize_limit(4096);
    let err = wal.append_blocking((0..50).map(|i| rec("big", i)).collect()).unwrap_err();
    match &err {
        WalError::Io(e) => assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}"),
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(wal.committed_seq(), 10);
    assert_eq!(wal.stats().io_errors, 1);
    // The failed group was cut back off the file, so a small append still fits
    // under the limit, right after the last good record.
    assert_eq!(wal.append_blocking(vec![rec("small", 0)]).unwrap(), 10..11);
    assert_eq!(std::fs::metadata(dir.join("00000000000000000000.wal")).unwrap().len(), 11 * 116);

    // The "disk" recovers.
    set_fsize_limit(libc::RLIM_INFINITY);
    let big = wal.append_blocking((0..50).map(|i| rec("big", i)).collect()).unwrap();
    assert_eq!(big, 11..61);

    let check = |wal: &Wal| {
        let mut reader = wal.reader(0).unwrap();
        let mut all = Vec::new();
        while reader.next_seq() < wal.committed_seq() {
            all.extend(reader.read_batch_blocking(1000, Duration::from_secs(1)).unwrap());
        }
        assert_eq!(all.len(), 61);
        for (seq, p) in &all {
            let expected = match *seq {
                s @ 0..=9 => rec("ok", s),
                10 => rec("small", 0),
                s => rec("big", s - 11),
            };
            assert_eq!(p, &expected, "record {seq}");
        }
    };
    check(&wal);
    wal.shutdown();
    drop(wal);
    let wal = Wal::open(WalConfig { dir: dir.to_path_buf(), segment_bytes: 1 << 20, ..WalConfig::default() }).unwrap();
    assert_eq!(wal.committed_seq(), 61);
    check(&wal);
    drop(wal);
    rotation_rollback(&dir.join("rotating"));
    println!("fsize-child-ok");
}

/// A group that started a new segment and then failed: a segment made only for
/// the failed records goes and the old one is cut back; a segment that starts at
/// the group's first record (the old one was full) stays, emptied.
fn rotation_rollback(dir: &Path) {
    // Record `i` of a batch: the second one is big enough to force a rotation.
    let rec = |tag: &str, i: u64| {
        let mut p = format!("{tag}-{i}-").into_bytes();
        p.resize(if i == 1 { 4000 } else { 100 }, b'y');
        p
    };
    let batch = |tag: &str| (0..12).map(|i| rec(tag, i)).collect::<Vec<_>>();
    let seg = |first: u64| dir.join(format!("{first:020}.wal"));
    let len = |first: u64| std::fs::metadata(seg(first)).unwrap().len();
    let config = || WalConfig { dir: dir.to_path_buf(), segment_bytes: 5000, ..WalConfig::default() };
    let wal = Wal::open(config()).unwrap();
    let mut expected = Vec::new();
    let ok: Vec<_> = (0..10).map(|i| rec("ok", i + 2)).collect();
    assert_eq!(wal.append_blocking(ok.clone()).unwrap(), 0..10);
    expected.extend(ok); // 1160 bytes in segment 0

    // Record 10 fits segment 0; record 11 (4016 bytes) starts segment 11, which
    // then passes the 4096-byte limit.
    set_fsize_limit(4096);
    let err = wal.append_blocking(batch("fail")).unwrap_err();
    assert!(matches!(err, WalError::Io(_)), "{err:?}");
    assert!(!seg(11).exists(), "segment made by the failed group removed");
    assert_eq!(len(0), 1160, "old segment cut back");
    assert_eq!(wal.committed_seq(), 10);
    let small = vec![rec("small", 0)];
    assert_eq!(wal.append_blocking(small.clone()).unwrap(), 10..11);
    expected.extend(small);

    set_fsize_limit(libc::RLIM_INFINITY);
    assert_eq!(wal.append_blocking(batch("a")).unwrap(), 11..23);
    expected.extend(batch("a"));

    // Segment 0 holds 0..12, segment 12 holds 12..21 (4944 bytes), segment 21
    // holds 21..23 (232 bytes).
    assert_eq!((len(12), len(21)), (4944, 232));
    // A 4916-byte record does not fit segment 21: the group rotates at its first
    // record into segment 23, and fails there.
    set_fsize_limit(4096);
    let err = wal.append_blocking(vec![vec![b'z'; 4900]]).unwrap_err();
    assert!(matches!(err, WalError::Io(_)), "{err:?}");
    assert_eq!(len(23), 0, "rotated segment kept, emptied");
    let small = vec![rec("small", 2)];
    assert_eq!(wal.append_blocking(small.clone()).unwrap(), 23..24);
    expected.extend(small);
    assert_eq!(len(23), 116);
    set_fsize_limit(libc::RLIM_INFINITY);

    drop(wal);
    let wal = Wal::open(config()).unwrap();
    assert_eq!(wal.committed_seq(), 24);
    let mut reader = wal.reader(0).unwrap();
    let mut all = Vec::new();
    while reader.next_seq() < 24 {
        all.extend(reader.read_batch_blocking(1000, Duration::from_secs(1)).unwrap().into_iter().map(|(_, p)| p));
    }
    assert_eq!(all, expected);
}

#[test]
fn wal_failed_write_is_undone_and_the_log_recovers_when_space_returns() {
    if let Some(dir) = std::env::var_os(FSIZE_ENV) {
        fsize_child(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The limit is per process, so it is set in a child of its own.
    let out = child("wal_failed_write_is_undone_and_the_log_recovers_when_space_returns", FSIZE_ENV, tmp.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(stdout.contains("fsize-child-ok"), "{stdout}");
}

/// Many appenders against one log with the durable default: every
/// acknowledgement is visible to a reader started afterwards, and the readers'
/// view never runs ahead of `committed_seq`.
#[test]
fn wal_readers_never_see_uncommitted_records() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = Wal::open(WalConfig { dir: tmp.path().to_path_buf(), segment_bytes: 8 << 10, ..WalConfig::default() }).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let wal = wal.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    wal.append_blocking(vec![vec![7u8; 40]; 3]).unwrap();
                }
            })
        })
        .collect();
    let mut reader = wal.reader(0).unwrap();
    let until = Instant::now() + Duration::from_millis(500);
    let mut next = 0;
    while Instant::now() < until {
        for (seq, p) in reader.read_batch_blocking(100, Duration::from_millis(50)).unwrap() {
            assert_eq!(seq, next);
            assert!(seq < wal.committed_seq());
            assert_eq!(p, vec![7u8; 40]);
            next += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(next > 0);
}
