//! `vm prune`, `vm set`, `vm logs`, `vm stats`, `vm ports` and several VMs
//! at once, with the real binaries, on VM records written straight into
//! the store: nothing here boots a VM or touches the host's network.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{Home, assert_success, stderr, stdout};

/// A home whose daemon runs, with the given VMs recorded before it started
/// (VMs recorded `running` then would be reconciled to stopped).
fn home_with(vms: &[(&str, &str, &str)]) -> Home {
    let home = Home::new();
    assert_success(&home.bangerd(&["--migrate"]));
    for (id, name, state) in vms {
        common::insert_vm(&home.db(), id, name, state);
    }
    home.start_daemon();
    home
}

fn vm_dir(home: &Home, id: &str) -> PathBuf {
    let dir = home.path().join("state/vms").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn show(home: &Home, vm: &str) -> serde_json::Value {
    let out = home.banger(&["vm", "show", vm, "--json"]);
    assert_success(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn names(home: &Home) -> Vec<String> {
    let out = home.banger(&["vm", "list", "--json"]);
    assert_success(&out);
    let vms: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    vms.iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn prune_asks_refuses_without_a_terminal_and_keeps_running_vms() {
    let home = home_with(&[
        ("aaaa000000000001", "made", "created"),
        ("aaaa000000000002", "halted", "stopped"),
        ("aaaa000000000003", "broken", "error"),
    ]);
    // Recorded after the daemon's start-up reconcile, so it stays running.
    common::insert_vm(&home.db(), "aaaa000000000004", "busy", "running");

    // The test's stdin is not a terminal: nothing to ask on.
    let out = home
        .command(common::BANGER)
        .args(["vm", "prune"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("banger: ") && err.contains("-f") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(names(&home).len(), 4, "nothing deleted");

    let out = home.banger(&["vm", "prune", "-f"]);
    assert_success(&out);
    // In `vm list` order: by creation time, then name.
    assert_eq!(
        stdout(&out),
        "deleted broken\ndeleted halted\ndeleted made\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(names(&home), ["busy"]);

    let out = home.banger(&["vm", "prune", "--force"]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("Nothing to prune"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn several_vms_are_reported_in_the_order_given() {
    let home = home_with(&[
        ("bbbb000000000001", "first", "stopped"),
        ("bbbb000000000002", "second", "created"),
    ]);
    let out = home.banger(&["vm", "delete", "second", "nope", "bbbb000000000001"]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "second: deleted\nfirst: deleted\n");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("banger: ")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("banger: nope: ") && lines[0].contains("no VM"),
        "{err}"
    );
    assert_eq!(lines[1], "banger: 1 of 3 VMs failed");
    assert!(names(&home).is_empty());

    // One VM: its own error and exit code, no summary.
    let out = home.banger(&["vm", "stop", "nope"]);
    assert_eq!(code(&out), Some(1));
    assert!(!stderr(&out).contains("VMs failed"), "{}", stderr(&out));
    let out = home.banger(&["vm", "restart", "nope"]);
    assert_eq!(code(&out), Some(1));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn set_checks_everything_before_changing_anything() {
    let home = home_with(&[("cccc000000000001", "dev", "stopped")]);
    common::insert_vm(&home.db(), "cccc000000000002", "live", "running");
    let before = show(&home, "dev");

    let out = home.banger(&["vm", "set", "dev", "--disk-size", "4G", "--vcpu", "8"]);
    assert_eq!(code(&out), Some(2), "a shrink is a bad request");
    let err = stderr(&out);
    assert!(err.contains("only grows") && err.contains("8G"), "{err}");
    let out = home.banger(&["vm", "set", "dev", "--memory", "64"]);
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("at least 128 MiB"),
        "{}",
        stderr(&out)
    );
    for usage in [
        &["vm", "set", "dev"][..],
        &["vm", "set", "dev", "--vcpu", "0"],
        &["vm", "set", "dev", "--nat", "--no-nat"],
    ] {
        let out = home.banger(usage);
        assert_eq!(code(&out), Some(2), "{usage:?}: {}", stderr(&out));
    }
    let out = home.banger(&["vm", "set", "live", "--memory", "4096"]);
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr(&out).contains("`banger vm stop live`"),
        "{}",
        stderr(&out)
    );
    // No work disk file: growing it fails, and nothing else changes either.
    let out = home.banger(&["vm", "set", "dev", "--vcpu", "4", "--disk-size", "16G"]);
    assert_eq!(code(&out), Some(1));
    assert!(stderr(&out).contains("no work disk"), "{}", stderr(&out));
    assert_eq!(show(&home, "dev")["spec"], before["spec"], "unchanged");

    let out = home.banger(&[
        "vm", "set", "dev", "--vcpu", "4", "--memory", "4096", "--nat",
    ]);
    assert_success(&out);
    assert_eq!(stdout(&out), "dev: 4 vcpu | 4096 MiB | 8G disk | nat on\n");
    let spec = &show(&home, "dev")["spec"];
    assert_eq!(
        (&spec["vcpu"], &spec["memory_mib"], &spec["nat"]),
        (&4.into(), &4096.into(), &true.into())
    );
    let out = home.banger(&["vm", "set", "dev", "--no-nat"]);
    assert_success(&out);
    assert_eq!(show(&home, "dev")["spec"]["nat"], false);
}

/// 8G, as `insert_vm` records, formatted like a real work disk.
fn make_work_disk(home: &Home, id: &str) -> PathBuf {
    let path = vm_dir(home, id).join("work.ext4");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(8 << 30).unwrap();
    drop(f);
    let out = std::process::Command::new("mkfs.ext4")
        .args(["-F", "-q"])
        .arg(&path)
        .output()
        .expect("mkfs.ext4 (e2fsprogs) is installed");
    assert_success(&out);
    path
}

fn fs_bytes(path: &Path) -> u64 {
    let out = std::process::Command::new("dumpe2fs")
        .arg("-h")
        .arg(path)
        .output()
        .unwrap();
    let text = stdout(&out);
    let field = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {text}"))
    };
    field("Block count:") * field("Block size:")
}

#[test]
fn the_work_disk_grows_with_its_filesystem() {
    let id = "dddd000000000001";
    let home = home_with(&[(id, "dev", "stopped")]);
    let disk = make_work_disk(&home, id);
    let out = home.banger(&["vm", "set", "dev", "--disk-size", "9G"]);
    assert_success(&out);
    assert!(
        stderr(&out).contains("growing the work disk to 9G"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), 9 << 30);
    assert_eq!(fs_bytes(&disk), 9 << 30);
    assert_eq!(show(&home, "dev")["spec"]["disk_size"], "9G");

    // Stats of a stopped VM: its state and disks, no VMM, no guest.
    let out = home.banger(&["vm", "stats", "dev", "--json"]);
    assert_success(&out);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["state"], "stopped");
    assert!(
        stats["vmm"].is_null() && stats["guest"].is_null(),
        "{stats}"
    );
    let work = &stats["disks"][0];
    assert_eq!(work["role"], "work");
    assert_eq!(work["apparent_bytes"], 9u64 << 30);
    let allocated = work["allocated_bytes"].as_u64().unwrap();
    assert!(allocated > 0 && allocated < 1 << 30, "sparse: {allocated}");
    assert!(
        stats["notes"].to_string().contains("no root disk"),
        "{stats}"
    );
    let out = home.banger(&["vm", "stats", "dev"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("state:") && text.contains("stopped") && text.contains("work disk:"),
        "{text}"
    );
    assert!(text.contains("of 9.0 GiB"), "{text}");
}

#[test]
fn logs_print_both_logs_bounded_and_cleaned() {
    let id = "eeee000000000001";
    let home = home_with(&[
        (id, "dev", "stopped"),
        ("eeee000000000002", "fresh", "created"),
    ]);
    let dir = vm_dir(&home, id);
    std::fs::write(dir.join("qemu.log"), "qemu: warning: something\n").unwrap();
    // 2 MiB of console, then a last line with a title-setting escape.
    let mut console = "x".repeat(99) + "\n";
    console = console.repeat(2 * 1024 * 1024 / 100);
    console.push_str("last line \u{1b}]0;owned\u{7}\u{1b}[1;31mred\u{1b}[0m\n");
    std::fs::write(dir.join("console.log"), &console).unwrap();

    let out = home.banger(&["vm", "logs", "dev"]);
    assert_success(&out);
    let text = stdout(&out);
    let vmm = text.find("==> VMM log: ").expect("VMM header");
    let serial = text.find("==> serial console: ").expect("console header");
    assert!(vmm < serial, "{}", &text[..300.min(text.len())]);
    assert!(text.contains("qemu: warning: something\n"));
    assert!(text.contains("earlier bytes not shown"), "the cap is said");
    assert!(text.len() < 600 * 1024, "bounded: {} bytes", text.len());
    assert!(
        text.ends_with("last line red\n"),
        "cleaned: {:?}",
        &text[text.len() - 40..]
    );

    let out = home.banger(&["vm", "logs", "fresh"]);
    assert_success(&out);
    assert!(stdout(&out).contains("none yet"), "{}", stdout(&out));
}

#[test]
fn logs_follow_prints_what_is_appended() {
    let id = "ffff000000000001";
    let home = home_with(&[(id, "dev", "stopped")]);
    let console = vm_dir(&home, id).join("console.log");
    std::fs::write(&console, "booting\n").unwrap();
    let mut child = home
        .command(common::BANGER)
        .args(["vm", "logs", "dev", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line == want => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    };
    assert!(wait_for("booting"), "the existing log first");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&console)
        .unwrap()
        .write_all(b"login: ready\n")
        .unwrap();
    let followed = wait_for("login: ready");
    let _ = child.kill();
    let _ = child.wait();
    assert!(followed, "the appended line is printed");
}

#[test]
fn ports_need_a_running_vm() {
    let home = home_with(&[("abab000000000001", "dev", "stopped")]);
    let out = home.banger(&["vm", "ports", "dev"]);
    assert_eq!(code(&out), Some(1));
    assert!(
        stderr(&out).contains("banger vm start dev"),
        "{}",
        stderr(&out)
    );
    let out = home.banger(&["vm", "ports", "dev", "nope", "--json"]);
    assert_eq!(code(&out), Some(1));
    assert_eq!(stdout(&out).trim(), "[]");
    let err = stderr(&out);
    let dev = err.find("banger: dev: ").expect("dev first");
    let nope = err.find("banger: nope: ").expect("then nope");
    assert!(dev < nope, "{err}");
}

/// Runs `banger ARGS` on a pseudo-terminal (util-linux `script`), typing
/// `answer` into it.
fn on_a_terminal(home: &Home, args: &str, answer: &str) -> Output {
    let mut child = home
        .command("script")
        .args([
            "-q",
            "-e",
            "-c",
            &format!("{} {args}", common::BANGER),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) is installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    // Closing stdin at once could end the session before the question is
    // read; the prompt waits for a line, so keep it open until banger ends.
    let out = child.wait_with_output();
    drop(stdin);
    out.unwrap()
}

#[test]
fn prune_on_a_terminal_lists_and_asks() {
    let home = home_with(&[
        ("acac000000000001", "old", "stopped"),
        ("acac000000000002", "older", "error"),
    ]);
    let out = on_a_terminal(&home, "vm prune", "n\n");
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("old") && text.contains("older") && text.contains("Delete 2 VMs? [y/N]"),
        "{text}"
    );
    assert!(text.contains("Nothing deleted."), "{text}");
    assert_eq!(names(&home).len(), 2);

    let out = on_a_terminal(&home, "vm prune", "y\n");
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("deleted old") && text.contains("deleted older"),
        "{text}"
    );
    assert!(names(&home).is_empty());
}
