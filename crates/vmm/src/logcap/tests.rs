use super::*;

/// `len` bytes of a pattern whose every position is recognisable.
struct Pattern {
    at: u64,
    len: u64,
}

fn byte_at(i: u64) -> u8 {
    // Not periodic at any power of two that a cap could hide behind.
    (i % 251) as u8 ^ ((i / 251) % 7) as u8
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Odd-sized pieces, so rotations fall inside a write.
        let n = (buf.len() as u64).min(self.len - self.at).min(40_000) as usize;
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(self.at + k as u64);
        }
        self.at += n as u64;
        Ok(n)
    }
}

fn check_kept(file: &Path, total: u64, cap: u64) {
    let current = std::fs::read(file).unwrap();
    let rotated = std::fs::read(rotated_path(file)).unwrap_or_default();
    let on_disk = (current.len() + rotated.len()) as u64;
    assert!(
        on_disk <= 2 * cap,
        "{on_disk} bytes kept for a cap of {cap}"
    );
    assert!(on_disk >= cap.min(total), "kept only {on_disk}");
    assert!(current.len() as u64 <= cap && rotated.len() as u64 <= cap);
    // The newest bytes, in order, with nothing missing or doubled.
    let kept: Vec<u8> = rotated.iter().chain(&current).copied().collect();
    let first = total - kept.len() as u64;
    for (k, b) in kept.iter().enumerate() {
        assert_eq!(*b, byte_at(first + k as u64), "byte {}", first + k as u64);
    }
    assert_eq!(read_start(file).unwrap(), total - current.len() as u64);
    let mut log = CappedLog::open(file).unwrap().unwrap();
    assert_eq!((log.first, log.end), (first, total));
    assert_eq!(log.read_range(0, u64::MAX).unwrap(), kept);
    assert_eq!(
        log.read_range(total - 10, total).unwrap(),
        kept[kept.len() - 10..]
    );
}

#[test]
fn fifty_mib_through_the_capper_keeps_at_most_twice_the_cap_and_the_newest_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.log");
    let cap = 1 << 20;
    let total = 50 << 20;
    cap_stream(Pattern { at: 0, len: total }, &file, cap).unwrap();
    check_kept(&file, total, cap);
}

#[test]
fn a_restarted_capper_continues_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.log");
    let cap = 8192;
    cap_stream(Pattern { at: 0, len: 10_000 }, &file, cap).unwrap();
    check_kept(&file, 10_000, cap);
    // A second boot appends through a new capper.
    cap_stream(
        Pattern {
            at: 10_000,
            len: 30_000,
        },
        &file,
        cap,
    )
    .unwrap();
    check_kept(&file, 30_000, cap);
}

#[test]
fn a_short_log_is_not_rotated_and_a_missing_one_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qemu.log");
    assert!(CappedLog::open(&file).unwrap().is_none());
    cap_stream(&b"hello\n"[..], &file, DEFAULT_CAP).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), b"hello\n");
    assert!(!rotated_path(&file).exists() && !start_path(&file).exists());
    let log = CappedLog::open(&file).unwrap().unwrap();
    assert_eq!((log.first, log.end, log.parts.len()), (0, 6, 1));
}

#[test]
fn the_capper_argv_names_the_log_and_is_recognised_by_it() {
    let capper = LogCapper::new("/usr/bin/bangerd", DEFAULT_CAP);
    let cmd = capper.command(Path::new("/vms/vm-1/console.log"));
    assert_eq!(
        cmd.argv(),
        "/usr/bin/bangerd --cap-log /vms/vm-1/console.log 8388608"
    );
    let handle = VmHandle {
        backend: crate::BackendKind::Qemu,
        pid: 1,
        helper_pids: vec![],
        control_socket: "/vms/vm-1/qmp.sock".into(),
        vsock_uds: "/vms/vm-1/vsock.sock".into(),
        console_log: "/vms/vm-1/console.log".into(),
        vmm_log: "/vms/vm-1/qemu.log".into(),
    };
    let argv = |args: &[&str]| Argv::parse(format!("{}\0", args.join("\0")).as_bytes());
    assert!(is_capper_of(
        &handle,
        &argv(&["bangerd", "--cap-log", "/vms/vm-1/qemu.log", "1"])
    ));
    assert!(!is_capper_of(
        &handle,
        &argv(&["bangerd", "--cap-log", "/vms/vm-2/qemu.log", "1"])
    ));
    assert!(!is_capper_of(
        &handle,
        &argv(&["tail", "-f", "/vms/vm-1/console.log"])
    ));
}

#[test]
fn a_rotation_cut_short_still_reads_what_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("console.log");
    // The capper died after renaming the file and recording the start,
    // before creating the new file.
    std::fs::write(rotated_path(&file), b"older\n").unwrap();
    std::fs::write(start_path(&file), b"106\n").unwrap();
    let mut log = CappedLog::open(&file).unwrap().unwrap();
    assert_eq!((log.first, log.end), (100, 106));
    assert_eq!(log.read_range(0, 200).unwrap(), b"older\n");
}
