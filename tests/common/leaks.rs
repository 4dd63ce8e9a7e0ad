//! What a VM can leave on the host, listed where it really lives: taps in
//! the namespace, banger's NAT and fence rules (nftables and iptables),
//! loop devices, IP leases and the database's integrity, processes naming
//! the state directory, files under it, and known_hosts pins. Used after a
//! crash, a restart and `vm delete`, when nothing of the VM may be left.

use std::path::Path;
use std::process::Command;

/// Everything of VM `vm` (or of any VM) still on the host, one line each;
/// empty when nothing leaked. `in_ns` runs a command in the daemon's
/// network namespace and returns its stdout.
pub fn leaks(home: &Path, vm: &str, in_ns: &dyn Fn(&[&str]) -> String) -> Vec<String> {
    let mut found = Vec::new();
    for line in in_ns(&["ip", "-o", "link"]).lines() {
        if let Some(tap) = line.split(": ").nth(1).filter(|n| n.starts_with("fctap")) {
            found.push(format!("tap {tap}"));
        }
    }
    let rules = in_ns(&["nft", "list", "ruleset"]);
    for line in rules.lines() {
        if line.contains("\"banger-nat ") || line.contains("\"banger-guest ") {
            found.push(format!("nft rule: {}", line.trim()));
        }
    }
    if banger_sys::find_program("iptables-save").is_some() {
        for line in in_ns(&["iptables-save"]).lines() {
            if line.contains("banger-nat ") {
                found.push(format!("iptables rule: {line}"));
            }
        }
    }
    let home_text = home.to_string_lossy().into_owned();
    if let Ok(out) = Command::new("losetup").arg("-a").output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if line.contains(&home_text) {
                found.push(format!("loop device: {line}"));
            }
        }
    }
    let vms_dir = home.join("state/vms");
    for pid in super::vmenv::pids_mentioning(&vms_dir) {
        let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        found.push(format!(
            "process {pid}: {}",
            String::from_utf8_lossy(&argv).replace('\0', " ")
        ));
    }
    if let Ok(entries) = std::fs::read_dir(&vms_dir) {
        for e in entries.flatten() {
            found.push(format!("VM directory {}", e.path().display()));
        }
    }
    if let Ok(entries) = std::fs::read_dir(home.join("state/images")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".staging-") {
                found.push(format!("image staging {}", e.path().display()));
            }
        }
    }
    let pins = std::fs::read_to_string(home.join("state/ssh/known_hosts")).unwrap_or_default();
    for line in pins.lines().filter(|l| l.contains(&format!("banger:{vm}"))) {
        found.push(format!("known_hosts pin: {line}"));
    }
    found.extend(database(&home.join("state/banger.db")));
    found
}

/// Leases nobody should hold, and SQLite's own verdict on the file.
fn database(db: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let conn = match rusqlite::Connection::open(db) {
        Ok(c) => c,
        Err(e) => return vec![format!("database {}: {e}", db.display())],
    };
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap_or_else(|e| e.to_string());
    if integrity != "ok" {
        found.push(format!("database integrity: {integrity}"));
    }
    let mut leases = conn
        .prepare("SELECT ip, holder FROM ip_leases")
        .expect("the leases table");
    let rows = leases
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("leases");
    for (ip, holder) in rows.flatten() {
        found.push(format!("IP lease {ip} held by {holder}"));
    }
    found
}
