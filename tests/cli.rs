//! The `banger` CLI against a real `bangerd`, each test in its own
//! `BANGER_HOME`.

mod common;

use common::{Home, assert_success, stderr, stdout};

#[test]
fn version_prints_version_commit_and_build_time() {
    let home = Home::new();
    for args in [&["--version"][..], &["version"], &["-V"]] {
        let out = home.banger(args);
        assert_success(&out);
        let text = stdout(&out);
        let line = text.trim_end();
        assert!(
            line.starts_with(&format!("banger v{} (commit ", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
        let built = line
            .split(", built ")
            .nth(1)
            .expect("build time")
            .trim_end_matches(')');
        assert_eq!(built.len(), "2026-11-24T04:30:00Z".len(), "{built}");
        assert!(
            built.ends_with('Z') && built.as_bytes()[10] == b'T',
            "{built}"
        );
        let commit = line
            .split("(commit ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        assert!(!commit.is_empty(), "{line}");
    }
}

#[test]
fn vm_list_starts_the_daemon_and_prints_an_empty_json_list() {
    let home = Home::new();
    let out = home.banger(&["vm", "list", "--json"]);
    assert_success(&out);
    assert_eq!(stdout(&out).trim(), "[]");
    let err = stderr(&out);
    assert!(err.contains("started bangerd"), "{err}");
    assert!(
        err.contains(&home.path().join("state/bangerd.log").display().to_string()),
        "says where the log is: {err}"
    );
    assert!(home.db().exists(), "the daemon created its store");

    // The second call finds the running daemon and says nothing about it.
    let out = home.banger(&["ps", "--json"]);
    assert_success(&out);
    assert_eq!(stdout(&out).trim(), "[]");
    assert!(!stderr(&out).contains("started"), "{}", stderr(&out));
    assert!(home.log().contains("bangerd listening"), "{}", home.log());
}

#[test]
fn listing_shows_recorded_vms_with_the_spec_columns() {
    let home = Home::new();
    assert_success(&home.bangerd(&["--migrate"]));
    common::insert_vm(&home.db(), "0123456789abcdef", "dev", "stopped");
    common::insert_vm(&home.db(), "0123ffffffffffff", "web-1", "stopped");

    let out = home.banger(&["vm", "list"]);
    assert_success(&out);
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "ID",
            "NAME",
            "STATE",
            "IMAGE",
            "IP",
            "VCPU",
            "MEM",
            "DISK",
            "WORKSPACE",
            "CREATED"
        ]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with("01234567  dev "), "{row}");
    assert!(
        row.contains("stopped") && row.contains("debian-bookworm") && row.contains("172.16.0.2"),
        "{row}"
    );

    let out = home.banger(&["vm", "show", "web-1", "--json"]);
    assert_success(&out);
    let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(vm["id"], "0123ffffffffffff");
    assert_eq!(vm["spec"]["disk_size"], "8G");

    // A unique ID prefix works; a shared one is refused with the candidates.
    let out = home.banger(&["vm", "show", "0123f"]);
    assert_success(&out);
    assert!(stdout(&out).contains("name:"), "{}", stdout(&out));
    let out = home.banger(&["vm", "show", "0123"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dev") && stderr(&out).contains("web-1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let home = Home::new();
    let out = home.banger(&["vm", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("banger: ") && last.contains("nope"),
        "{err}"
    );

    let out = home.banger(&["vm", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("banger: "), "{}", stderr(&out));

    let out = home.banger(&["completion", "powershell"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn completion_scripts_for_three_shells() {
    let home = Home::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = home.banger(&["completion", shell]);
        assert_success(&out);
        // A script that calls `banger` back for candidates (live names).
        let script = stdout(&out);
        assert!(
            script.contains("banger") && script.contains("COMPLETE="),
            "{shell}: {script}"
        );
    }
}

#[test]
fn doctor_reports_rows_and_json_without_touching_state() {
    let home = Home::new();
    let out = home.banger(&["doctor"]);
    let text = stdout(&out);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("WARN") || l.starts_with("FAIL"))
        .collect();
    let has_fail = rows.iter().any(|r| r.starts_with("FAIL"));
    assert_eq!(
        out.status.code(),
        Some(if has_fail { 1 } else { 0 }),
        "{text}"
    );
    for name in [
        "architecture",
        "kvm",
        "tun",
        "firecracker",
        "qemu",
        "jailer",
        "vsock",
        "host tools",
        "config",
        "state store",
        "vm defaults",
        "bridge",
        "nat",
        "dns",
        "ssh-config",
        "cow strategy",
        "device-mapper",
        "default kernel",
        "default image",
        "daemon",
    ] {
        assert_eq!(
            rows.iter().filter(|r| r[6..].starts_with(name)).count(),
            1,
            "one {name} row in\n{text}"
        );
    }
    assert!(
        text.contains("(auto)") || text.contains("(built-in)"),
        "defaults carry provenance: {text}"
    );

    let out = home.banger(&["doctor", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor --json parses");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), rows.len());
    assert_eq!(report["ok"].as_bool().unwrap(), !has_fail);
    assert!(
        checks
            .iter()
            .all(|c| ["pass", "warn", "fail"].contains(&c["status"].as_str().unwrap()))
    );
    assert!(!home.db().exists(), "doctor never creates the store");
    assert!(!home.socket().exists(), "doctor never starts the daemon");
}

#[test]
fn doctor_reports_a_bad_config_with_file_and_line() {
    let home = Home::new();
    std::fs::create_dir_all(home.config_file().parent().unwrap()).unwrap();
    std::fs::write(
        home.config_file(),
        "log_level = \"info\"\nbridge_nam = \"br-fc\"\n",
    )
    .unwrap();
    let out = home.banger(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "config")
        .unwrap();
    assert_eq!(config["status"], "fail");
    let detail = config["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("{}:2", home.config_file().display()))
            && detail.contains("bridge_nam"),
        "{detail}"
    );
}

#[test]
fn a_bad_config_stops_the_daemon_with_a_clear_error() {
    let home = Home::new();
    home.write_config("[vm_defaults]\nvcpu = 0\n");
    let out = home.bangerd(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("bangerd: ") && err.contains("config.toml:2"),
        "{err}"
    );
    // The CLI reports the daemon's failure and where to read about it.
    let out = home.banger(&["vm", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("config.toml:2"), "{}", stderr(&out));
}

#[test]
fn a_file_sync_entry_outside_the_owners_home_stops_the_daemon() {
    let home = Home::new();
    let owner = home.path().join("owner");
    std::fs::create_dir(&owner).unwrap();
    home.write_config("[[file_sync]]\nhost = \"/etc/passwd\"\nguest = \"/root/passwd\"\n");
    let out = home
        .command(common::BANGERD)
        .env("HOME", &owner)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("config.toml:2") && err.contains("outside the owner's home"),
        "{err}"
    );
}

#[test]
fn concurrent_first_commands_share_one_daemon() {
    let home = Home::new();
    use std::process::Stdio;
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut cmd = home.command(common::BANGER);
            cmd.args(["vm", "list", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_success(&out);
        assert_eq!(stdout(&out).trim(), "[]");
    }
}

#[test]
fn ssh_config_prints_installs_and_uninstalls_exactly_its_block() {
    let home = Home::new();
    let user_home = tempfile::tempdir().unwrap();
    let user_config = user_home.path().join(".ssh/config");
    std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    let mine = "Host work\n    HostName work.example\n";
    std::fs::write(&user_config, mine).unwrap();
    let run = |args: &[&str]| {
        home.command(common::BANGER)
            .args(args)
            .env("HOME", user_home.path())
            .output()
            .unwrap()
    };

    let out = run(&["ssh-config"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("Host *.vm") && text.contains("StrictHostKeyChecking yes"),
        "{text}"
    );
    assert!(
        home.path().join("state/ssh/id_ed25519").exists(),
        "the user key exists"
    );

    assert_success(&run(&["ssh-config", "--install"]));
    assert_success(&run(&["ssh-config", "--install"]));
    let installed = std::fs::read_to_string(&user_config).unwrap();
    assert_eq!(installed.matches("Include ").count(), 1, "{installed}");
    assert!(
        installed.ends_with(mine),
        "the user's own lines stay: {installed}"
    );

    assert_success(&run(&["ssh-config", "--uninstall"]));
    assert_eq!(std::fs::read_to_string(&user_config).unwrap(), mine);
}

#[test]
fn doctor_says_which_vmm_the_config_resolves_to_and_why() {
    let vmm_row = |config: &str| {
        let home = Home::new();
        home.write_config(&format!("dns_listen = \"127.0.0.1:0\"\n{config}"));
        let out = home.banger(&["doctor", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let row = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "vmm")
            .unwrap_or_else(|| panic!("no vmm row: {report}"))
            .clone();
        (
            row["status"].as_str().unwrap().to_owned(),
            row["detail"].as_str().unwrap().to_owned(),
        )
    };
    // Whatever this host has, `auto` names a backend and a reason.
    let (_, detail) = vmm_row("");
    assert!(
        (detail.starts_with("qemu") || detail.starts_with("firecracker: "))
            && detail.ends_with("(vmm = \"auto\")"),
        "{detail}"
    );
    let (_, detail) = vmm_row("vmm = \"qemu\"\n");
    assert!(
        detail.starts_with("qemu") && detail.contains("vmm = \"qemu\" in config.toml"),
        "{detail}"
    );
    // An explicit Firecracker that is not there fails, naming the fix.
    let (status, detail) =
        vmm_row("vmm = \"firecracker\"\nfirecracker_bin = \"/nonexistent/firecracker\"\n");
    assert_eq!(status, "fail", "{detail}");
    assert!(
        detail.contains("/nonexistent/firecracker was not found")
            && detail.contains("firecracker_bin"),
        "{detail}"
    );
}
