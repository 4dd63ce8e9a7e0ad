//! The log capper as the process the VMM drivers start
//! (`<program> --cap-log FILE BYTES`, here the `log-capper` test binary;
//! `bangerd` carries the same mode): bounded on disk, newest bytes kept,
//! gone at the writer's EOF, and a dead capper never blocks the writer.

use std::io::Write;
use std::time::{Duration, Instant};

use banger_sys::proc;
use banger_vmm::logcap::{self, LogCapper};

const CAPPER: &str = env!("CARGO_BIN_EXE_log-capper");

fn byte_at(i: u64) -> u8 {
    b"0123456789abcdefghijklmnopqrstuvwxyz\n"[(i % 37) as usize]
}

#[test]
fn fifty_mib_through_the_capper_process_keeps_at_most_twice_the_cap_and_it_exits_at_eof() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.log");
    let cap = 1 << 20;
    let capper = LogCapper::new(CAPPER, cap);
    let (pid, pipe) = capper.start(&file).unwrap();
    let mut writer = std::fs::File::from(pipe);
    let total: u64 = 50 << 20;
    let mut at = 0u64;
    let mut buf = vec![0u8; 100_003];
    while at < total {
        let n = (buf.len() as u64).min(total - at) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(at + k as u64);
        }
        writer.write_all(&buf[..n]).unwrap();
        at += n as u64;
    }
    drop(writer);
    assert!(
        proc::wait_gone(pid, &proc::UnreapedChild, Duration::from_secs(30)),
        "the capper did not exit at EOF"
    );
    let current = std::fs::read(&file).unwrap();
    let rotated = std::fs::read(logcap::rotated_path(&file)).unwrap();
    let kept = (current.len() + rotated.len()) as u64;
    assert!(kept <= 2 * cap && kept >= cap, "{kept} bytes on disk");
    let first = total - kept;
    for (k, b) in rotated.iter().chain(&current).enumerate() {
        assert_eq!(*b, byte_at(first + k as u64), "byte {}", first + k as u64);
    }
    assert_eq!(
        logcap::read_start(&file).unwrap(),
        total - current.len() as u64
    );
}

#[test]
fn a_dead_capper_never_blocks_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.log");
    let (pid, pipe) = LogCapper::new(CAPPER, 1 << 20).start(&file).unwrap();
    let mut writer = std::fs::File::from(pipe);
    writer.write_all(b"before\n").unwrap();
    assert!(proc::kill_hard(
        pid,
        &proc::UnreapedChild,
        Duration::from_secs(5)
    ));
    // More than a pipe holds: with no reader every write fails at once
    // (EPIPE; VMMs ignore SIGPIPE, as this test process does) instead of
    // waiting for one.
    let started = Instant::now();
    let err = writer.write_all(&vec![b'x'; 1 << 20]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    assert!(started.elapsed() < Duration::from_secs(2));
}
