//! Shell completion through the real binary: the calls a sourced bash
//! script makes (`COMPLETE=bash banger -- WORDS...`) get the VM names of a
//! running daemon, and nothing (and no daemon started) without one.

mod common;

use common::{Home, assert_success, stderr, stdout};

/// What bash's completion function runs for the command line `words`, the
/// last word being the one under the cursor.
fn complete(home: &Home, words: &[&str]) -> std::process::Output {
    let out = home
        .command(common::BANGER)
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .arg("--")
        .args(words)
        .output()
        .expect("run banger");
    assert_success(&out);
    out
}

/// The candidates that are not options (an empty word offers options too).
fn candidates(home: &Home, words: &[&str]) -> Vec<String> {
    stdout(&complete(home, words))
        .lines()
        .filter(|c| !c.starts_with('-'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_offers_the_daemon_s_vm_names() {
    let home = Home::new();

    // No daemon: no names (only the options), nothing on stderr, and no
    // daemon started.
    let out = complete(&home, &["banger", "vm", "show", ""]);
    assert_eq!(stdout(&out), "--json\n--help", "{}", stdout(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert!(
        complete(&home, &["banger", "vm", "show", "d"])
            .stdout
            .is_empty()
    );
    assert!(!home.socket().exists(), "a daemon was started");

    assert_success(&home.bangerd(&["--migrate"]));
    common::insert_vm(&home.db(), "dddd000000000001", "devbox", "stopped");
    common::insert_vm(&home.db(), "dddd000000000002", "web", "created");
    home.start_daemon();

    assert_eq!(
        candidates(&home, &["banger", "vm", "show", ""]),
        ["devbox", "web"]
    );
    assert_eq!(candidates(&home, &["banger", "vm", "ssh", "d"]), ["devbox"]);
    // Every further VM of a command that takes several.
    assert_eq!(
        candidates(&home, &["banger", "vm", "stop", "devbox", "w"]),
        ["web"]
    );
    assert_eq!(
        candidates(&home, &["banger", "vm", "workspace", "export", "dev"]),
        ["devbox"]
    );
    // Subcommands still complete as before.
    let subcommands = candidates(&home, &["banger", "vm", "st"]);
    for sub in ["start", "stop", "stats"] {
        assert!(subcommands.iter().any(|s| s == sub), "{subcommands:?}");
    }

    // With no words, the registration script a user sources.
    let out = home
        .command(common::BANGER)
        .env("COMPLETE", "bash")
        .output()
        .unwrap();
    assert_success(&out);
    assert!(
        stdout(&out).contains("-F _clap_complete_banger banger"),
        "{}",
        stdout(&out)
    );
}
