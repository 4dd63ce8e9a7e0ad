use std::collections::{BTreeMap, BTreeSet};

use clap_complete::engine::ArgValueCandidates;

use super::*;

/// Every visible command's page name and the command as typed, walked
/// from the declaration itself.
fn expected_pages(cmd: &clap::Command, typed: &str, out: &mut BTreeMap<String, String>) {
    let typed = format!("{typed} {}", cmd.get_name())
        .trim_start()
        .to_owned();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        expected_pages(sub, &typed, out);
    }
    out.insert(format!("{}.1", typed.replace(' ', "-")), typed);
}

/// The roff requests clap_mangen's pages may use (man(7) macros and the
/// groff conditionals that define the apostrophe string).
const REQUESTS: [&str; 14] = [
    "TH", "SH", "SS", "TP", "IP", "PP", "RS", "RE", "br", "sp", "nf", "fi", "ie", "el",
];

/// Checks `text` is a man(7) page for `name`: `.TH name 1` first (after the
/// string definitions), a NAME section that starts with the name, only
/// known requests, only well-formed escapes, and no font left on at a
/// line's end.
fn check_roff(text: &str, name: &str) {
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with('.') || l.starts_with('\''))
        .collect();
    let first = requests
        .iter()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_else(|| panic!("{name}: no request"));
    let title: Vec<&str> = first.split_whitespace().collect();
    assert_eq!(title[..3], [".TH", name, "1"], "{name}: {first}");
    for request in &requests {
        let macro_name = request[1..].split_whitespace().next().unwrap_or("");
        assert!(REQUESTS.contains(&macro_name), "{name}: {request}");
    }
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == ".SH NAME")
        .unwrap_or_else(|| panic!("{name}: no NAME section"));
    assert!(
        lines[at + 1].starts_with(&name.replace('-', "\\-")),
        "{name}: {}",
        lines[at + 1]
    );
    for line in text.lines() {
        check_escapes(line, name);
    }
}

/// Every backslash starts an escape troff knows: `\-`, `\\`, `\e`, `\&`,
/// `\fX`, `\(xx`, `\*(xx`, `\n(xx`; the last font set on a line is roman.
fn check_escapes(line: &str, name: &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut font = b'R';
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        let rest = &bytes[i + 1..];
        let len = match rest {
            [b'-' | b'\\' | b'e' | b'&', ..] => 1,
            [b'f', f @ (b'B' | b'I' | b'R' | b'P'), ..] => {
                font = if *f == b'P' { b'R' } else { *f };
                2
            }
            [b'(', a, b, ..] if a.is_ascii_graphic() && b.is_ascii_graphic() => 3,
            [b'*' | b'n', b'(', a, b, ..] if a.is_ascii_graphic() && b.is_ascii_graphic() => 4,
            _ => panic!("{name}: bad escape at {i} in {line:?}"),
        };
        i += 1 + len;
    }
    assert_eq!(font, b'R', "{name}: font left on in {line:?}");
}

#[test]
fn a_man_page_for_every_command_parses_as_roff() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_man_pages(&dir.path().join("man1")).unwrap();
    let mut expected = BTreeMap::new();
    expected_pages(&Cli::command(), "", &mut expected);
    let names: BTreeSet<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, expected.keys().cloned().collect());
    assert_eq!(names.len(), written.len(), "no page written twice");
    for page in [
        "banger.1",
        "banger-vm.1",
        "banger-vm-run.1",
        "banger-vm-workspace-export.1",
    ] {
        assert!(names.contains(page), "{page}");
    }
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    let on_disk = std::fs::read_dir(dir.path().join("man1")).unwrap().count();
    assert_eq!(on_disk, written.len());
    for path in &written {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        check_roff(&text, name);
        // The synopsis names the command as it is typed.
        let typed = expected[&format!("{name}.1")].replace('-', "\\-");
        assert!(
            text.contains(&format!("\\fB{typed}\\fR")),
            "{name}: {typed}"
        );
    }
    // Written again over the first pages: the same files, no error.
    assert_eq!(write_man_pages(&dir.path().join("man1")).unwrap(), written);
}

/// Where groff is installed, it renders every page without a warning.
#[test]
fn groff_renders_the_pages_without_warnings() {
    if banger_sys::find_program("groff").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for page in write_man_pages(dir.path()).unwrap() {
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(out.status.success(), "{page:?}");
        assert!(
            out.stderr.is_empty(),
            "{page:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completion_scripts_register_banger_and_call_it_back() {
    let bash = String::from_utf8(completion_script(Shell::Bash)).unwrap();
    assert!(
        bash.lines()
            .any(|l| l.trim_start().starts_with("complete ") && l.ends_with(" banger")),
        "{bash}"
    );
    assert!(bash.contains("COMPLETE=\"bash\""), "{bash}");
    assert!(bash.contains("\"banger\" -- "), "{bash}");
    let zsh = String::from_utf8(completion_script(Shell::Zsh)).unwrap();
    assert!(zsh.starts_with("#compdef banger\n"), "{zsh}");
    assert!(zsh.contains("COMPLETE=\"zsh\""), "{zsh}");
    let fish = String::from_utf8(completion_script(Shell::Fish)).unwrap();
    assert!(fish.contains("--command banger"), "{fish}");
    assert!(fish.contains("COMPLETE=fish banger -- "), "{fish}");
}

/// Command path, argument id: arguments that name something the daemon
/// lists besides VMs (every `vm`/`vms` argument is checked on its own).
const NAMED: [(&str, &str); 9] = [
    ("vm create", "image"),
    ("vm run", "image"),
    ("image show", "name"),
    ("image delete", "name"),
    ("image promote", "name"),
    ("image register", "kernel_ref"),
    ("kernel show", "name"),
    ("kernel rm", "name"),
    ("kernel pull", "name"),
];

fn walk<'a>(cmd: &'a clap::Command, path: String, out: &mut Vec<(String, &'a clap::Arg)>) {
    for arg in cmd.get_arguments() {
        out.push((path.clone(), arg));
    }
    for sub in cmd.get_subcommands() {
        let path = format!("{path} {}", sub.get_name());
        walk(sub, path.trim_start().to_owned(), out);
    }
}

#[test]
fn arguments_that_name_a_vm_image_or_kernel_complete_live_names() {
    let cmd = Cli::command();
    let mut args = Vec::new();
    walk(&cmd, String::new(), &mut args);
    let has = |arg: &clap::Arg| arg.get::<ArgValueCandidates>().is_some();
    let vm_args: Vec<_> = args
        .iter()
        .filter(|(_, a)| matches!(a.get_id().as_str(), "vm" | "vms"))
        .collect();
    // show, start, stop, restart, kill, delete, set, logs, stats, ports,
    // snapshot, fork, ssh, exec, workspace prepare, workspace export.
    assert_eq!(vm_args.len(), 16);
    for (path, arg) in vm_args {
        assert!(has(arg), "{path} {}", arg.get_id());
    }
    for (path, id) in NAMED {
        let (_, arg) = args
            .iter()
            .find(|(p, a)| p == path && a.get_id() == id)
            .unwrap_or_else(|| panic!("{path} {id}"));
        assert!(has(arg), "{path} {id}");
    }
    // New names are not completed with existing ones.
    for (path, id) in [
        ("vm create", "name"),
        ("image build", "name"),
        ("kernel import", "name"),
    ] {
        let (_, arg) = args
            .iter()
            .find(|(p, a)| p == path && a.get_id() == id)
            .unwrap();
        assert!(!has(arg), "{path} {id}");
    }
}
