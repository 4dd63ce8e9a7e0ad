//! Shared by the integration tests: a private `BANGER_HOME` with the real
//! `banger` and `bangerd` binaries, and a raw protocol client.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const BANGER: &str = env!("CARGO_BIN_EXE_banger");
pub const BANGERD: &str = env!("CARGO_BIN_EXE_bangerd");

/// A throwaway installation. Dropping it stops its daemon, if one started.
pub struct Home {
    dir: HomeDir,
}

enum HomeDir {
    Temp(tempfile::TempDir),
    /// A cache kept between runs (built kernels and images).
    Kept(PathBuf),
}

impl Home {
    pub fn new() -> Self {
        // Short paths: Unix socket paths are limited to 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bh")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let home = Self {
            dir: HomeDir::Temp(dir),
        };
        // Tests run side by side: each daemon's DNS server takes a free port
        // (reported by `daemon ping`) instead of the shared 42069.
        home.write_config("dns_listen = \"127.0.0.1:0\"\n");
        home
    }

    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.config_file().parent().unwrap()).unwrap();
        std::fs::write(self.config_file(), text).unwrap();
    }

    /// A home that outlives the test, for artefacts worth keeping.
    pub fn at(path: &Path) -> Self {
        let home = Self {
            dir: HomeDir::Kept(path.to_owned()),
        };
        home.write_config("dns_listen = \"127.0.0.1:0\"\n");
        home
    }

    pub fn path(&self) -> &Path {
        match &self.dir {
            HomeDir::Temp(t) => t.path(),
            HomeDir::Kept(p) => p,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("run/bangerd.sock")
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("state/banger.db")
    }

    pub fn config_file(&self) -> PathBuf {
        self.path().join("config/config.toml")
    }

    /// A command for one of our binaries with this home and nothing of the
    /// caller's environment that could point elsewhere.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("BANGER_HOME", self.path())
            .env_remove("BANGER_LOG_LEVEL")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME");
        cmd
    }

    pub fn banger(&self, args: &[&str]) -> Output {
        self.command(BANGER)
            .args(args)
            .output()
            .expect("run banger")
    }

    pub fn bangerd(&self, args: &[&str]) -> Output {
        self.command(BANGERD)
            .args(args)
            .output()
            .expect("run bangerd")
    }

    /// Starts the daemon through the CLI, as a user would.
    pub fn start_daemon(&self) -> u32 {
        let out = self.banger(&["daemon", "ping", "--json"]);
        assert_success(&out);
        let pong: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        pong["pid"].as_u64().unwrap() as u32
    }

    /// Sends one raw line and returns the daemon's raw answer line.
    pub fn raw(&self, line: &str) -> serde_json::Value {
        let stream = UnixStream::connect(self.socket()).expect("connect");
        // The daemon may answer and close before reading an oversized request
        // whole; the answer is still there to read.
        let _ = (&stream).write_all(line.as_bytes());
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("bad answer {answer:?}: {e}"))
    }

    fn daemon_pid(&self) -> Option<u32> {
        let stream = UnixStream::connect(self.socket()).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        (&stream)
            .write_all(b"{\"version\":1,\"method\":\"ping\"}\n")
            .ok()?;
        let mut answer = String::new();
        BufReader::new(&stream).read_line(&mut answer).ok()?;
        let v: serde_json::Value = serde_json::from_str(&answer).ok()?;
        v["result"]["pid"].as_u64().map(|p| p as u32)
    }

    /// Stops the daemon with SIGTERM and waits for it to go.
    pub fn stop_daemon(&self) {
        if let Some(pid) = self.daemon_pid() {
            terminate(pid);
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("state/bangerd.log")).unwrap_or_default()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

pub fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    wait_until(Duration::from_secs(10), || {
        !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid)
    });
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

pub fn is_root() -> bool {
    // Asked of `id -u`, so the tests need no libc binding.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

/// Records a VM directly in the store, as a later daemon version would have.
/// Its runtime is what every VM gets at creation (address, vsock CID,
/// kernel), in the JSON the store keeps it as; no root disk or tap.
pub fn insert_vm(db: &Path, id: &str, name: &str, state: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let spec = r#"{"vcpu":2,"memory_mib":2048,"disk_size":"8G","nat":false}"#;
    conn.execute(
        "INSERT INTO vms (id, name, image, state, spec, runtime, workspace, created_at, updated_at, last_error)
         VALUES (?1, ?2, 'debian-bookworm', ?3, ?4, '{\"ip\":\"172.16.0.2\",\"vsock_cid\":3,\"kernel\":\"debian-cloud-amd64\"}', NULL,
                 '2026-11-24T04:30:00Z', '2026-11-24T04:30:00Z', NULL)",
        rusqlite::params![id, name, state, spec],
    )
    .unwrap();
}

/// The cache of kernels and images the end-to-end tests and benchmarks share
/// (`BANGER_E2E_CACHE`, default /var/cache/banger-e2e).
pub fn e2e_cache_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("BANGER_E2E_CACHE").unwrap_or_else(|| "/var/cache/banger-e2e".into()),
    )
}

/// Held by every test that boots VMs or writes the shared cache: two such
/// runs at once share a home and starve each other of the two cores (SPEC
/// §13: at most two VMs booting at once). Released when dropped.
pub fn e2e_lock() -> std::fs::File {
    let dir = e2e_cache_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::File::create(dir.join(".e2e.lock")).unwrap();
    banger_sys::os::lock_exclusive(&file).expect("lock the end-to-end cache");
    file
}
/// A kernel directory holding only an ELF header (x86_64), which is all the
/// kernel store checks and all the stand-in opens.
pub fn dummy_kernel(dir: &Path) -> PathBuf {
    let kernel = dir.join("kernel");
    std::fs::create_dir_all(&kernel).unwrap();
    let mut elf = vec![0u8; 64];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    elf[18] = 62; // EM_X86_64
    std::fs::write(kernel.join("vmlinux"), elf).unwrap();
    kernel
}

/// A small, empty ext4 root filesystem.
pub fn dummy_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs.ext4");
    let out = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&rootfs)
        .arg("16M")
        .output()
        .unwrap();
    assert_success(&out);
    rootfs
}

/// Waits up to `limit` for the child in `slot` to exit by itself; takes it
/// out of the slot when it has. True if it exited (or there was none).
pub fn wait_child_exit(
    slot: &std::cell::RefCell<Option<std::process::Child>>,
    limit: Duration,
) -> bool {
    let gone = wait_until(limit, || {
        slot.borrow_mut()
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    });
    if gone {
        slot.borrow_mut().take();
    }
    gone
}

pub mod leaks;
pub mod vmenv;

/// `git -C dir ARGS`, which must succeed; its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert_success(&out);
    stdout(&out).trim().to_owned()
}
