use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use banger_sys::Cmd;

use super::*;

const BANGER: &str = "/home/u/.config/banger/ssh_config";

fn block_for(banger: &str) -> String {
    format!(
        "# >>> banger >>> (managed by `banger ssh-config`; remove with `banger ssh-config --uninstall`)\n\
         Include {banger}\n\
         # <<< banger <<<\n"
    )
}

struct Home {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn home() -> Home {
    let dir = tempfile::tempdir().unwrap();
    let config = user_ssh_config(dir.path());
    Home { _dir: dir, config }
}

fn home_with(content: &[u8]) -> Home {
    let h = home();
    fs::create_dir_all(h.config.parent().unwrap()).unwrap();
    fs::write(&h.config, content).unwrap();
    h
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_creates_the_dir_and_file_privately() {
    let h = home();
    let change = install_include(&h.config, Path::new(BANGER)).unwrap();
    assert_eq!(change, IncludeChange::Installed);
    assert_eq!(fs::read_to_string(&h.config).unwrap(), block_for(BANGER));
    assert_eq!(mode(&h.config), 0o600);
    assert_eq!(mode(h.config.parent().unwrap()), 0o700);
}

#[test]
fn install_puts_the_block_on_top_and_keeps_the_rest_and_its_mode() {
    let original = "Host *\n    User alice\n";
    let h = home_with(original.as_bytes());
    fs::set_permissions(&h.config, fs::Permissions::from_mode(0o644)).unwrap();
    install_include(&h.config, Path::new(BANGER)).unwrap();
    assert_eq!(
        fs::read_to_string(&h.config).unwrap(),
        format!("{}\n{original}", block_for(BANGER))
    );
    assert_eq!(mode(&h.config), 0o644, "the user's mode is kept");
}

#[test]
fn installing_twice_leaves_one_block_and_does_not_write() {
    let h = home_with(b"Host a\n");
    assert_eq!(
        install_include(&h.config, Path::new(BANGER)).unwrap(),
        IncludeChange::Installed
    );
    let once = fs::read(&h.config).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    let before = inode(&h.config);
    assert_eq!(
        install_include(&h.config, Path::new(BANGER)).unwrap(),
        IncludeChange::Unchanged
    );
    assert_eq!(fs::read(&h.config).unwrap(), once);
    assert_eq!(
        inode(&h.config),
        before,
        "an unchanged file is not rewritten"
    );
}

#[test]
fn an_outdated_or_moved_block_is_replaced_at_the_top() {
    let old = block_for("/old/ssh_config");
    let h = home_with(format!("Host a\n    Port 2\n{old}\nHost b\n").as_bytes());
    assert_eq!(
        include_status(&h.config, Path::new(BANGER)).unwrap(),
        IncludeStatus::Outdated
    );
    assert_eq!(
        install_include(&h.config, Path::new(BANGER)).unwrap(),
        IncludeChange::Updated
    );
    assert_eq!(
        fs::read_to_string(&h.config).unwrap(),
        format!("{}\nHost a\n    Port 2\nHost b\n", block_for(BANGER))
    );
    assert_eq!(
        include_status(&h.config, Path::new(BANGER)).unwrap(),
        IncludeStatus::Current
    );
}

#[test]
fn uninstall_restores_the_original_bytes() {
    let originals: &[&[u8]] = &[
        b"",
        b"Host a\n",
        b"Host a",
        b"\nHost a\n",
        b"\n\n",
        b"Host a\r\n    User b\r\n",
        b"Host caf\xe9\n",
        b"# >>> not banger >>>\nHost a\n",
    ];
    for original in originals {
        let h = home_with(original);
        install_include(&h.config, Path::new(BANGER)).unwrap();
        assert!(
            fs::read(&h.config)
                .unwrap()
                .starts_with(block_for(BANGER).as_bytes())
        );
        assert!(uninstall_include(&h.config).unwrap(), "{original:?}");
        assert_eq!(&fs::read(&h.config).unwrap(), original, "{original:?}");
    }
}

#[test]
fn uninstall_without_a_block_changes_nothing() {
    let h = home();
    assert!(!uninstall_include(&h.config).unwrap());
    assert!(!h.config.exists(), "a missing file is not created");

    let h = home_with(b"Host a\n\n# <<< banger <<<\n");
    assert!(!uninstall_include(&h.config).unwrap());
    assert_eq!(
        fs::read(&h.config).unwrap(),
        b"Host a\n\n# <<< banger <<<\n"
    );
    assert_eq!(
        include_status(&h.config, Path::new(BANGER)).unwrap(),
        IncludeStatus::Missing
    );
}

#[test]
fn uninstall_removes_only_the_block_even_when_hand_edited() {
    let content = format!(
        "Host a\n{}\nHost b\n",
        block_for(BANGER).replace("Include", "# user note\nInclude")
    );
    let h = home_with(content.as_bytes());
    assert!(uninstall_include(&h.config).unwrap());
    assert_eq!(fs::read_to_string(&h.config).unwrap(), "Host a\nHost b\n");
}

#[test]
fn an_unclosed_block_is_refused_with_its_line() {
    let content = "Host a\n# >>> banger >>> (managed)\nInclude /x\nHost b\n";
    let h = home_with(content.as_bytes());
    let err = install_include(&h.config, Path::new(BANGER)).unwrap_err();
    assert!(
        matches!(err, SshError::UnclosedBlock { line: 2, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&h.config.display().to_string()), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(uninstall_include(&h.config).is_err());
    assert_eq!(fs::read_to_string(&h.config).unwrap(), content, "untouched");
}

#[test]
fn a_symlinked_config_is_written_through_the_link() {
    let h = home();
    let dotfiles = h
        .config
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("dotfiles");
    fs::create_dir_all(&dotfiles).unwrap();
    fs::create_dir_all(h.config.parent().unwrap()).unwrap();
    let real = dotfiles.join("ssh_config");
    fs::write(&real, "Host a\n").unwrap();
    std::os::unix::fs::symlink(&real, &h.config).unwrap();

    install_include(&h.config, Path::new(BANGER)).unwrap();
    assert!(
        fs::symlink_metadata(&h.config)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_to_string(&real).unwrap(),
        format!("{}\nHost a\n", block_for(BANGER))
    );
    assert!(uninstall_include(&h.config).unwrap());
    assert_eq!(fs::read_to_string(&real).unwrap(), "Host a\n");
}

#[test]
fn a_path_with_spaces_is_quoted_in_the_include() {
    let h = home();
    install_include(&h.config, Path::new("/home/J Doe/ssh_config")).unwrap();
    let text = fs::read_to_string(&h.config).unwrap();
    assert!(
        text.contains("\nInclude \"/home/J Doe/ssh_config\"\n"),
        "{text}"
    );
}

/// With the block on top, OpenSSH applies banger's settings to `*.vm` even
/// when the user's own `Host *` block sets the same options further down.
#[test]
fn openssh_applies_the_include_before_the_users_host_blocks() {
    let root = tempfile::tempdir().unwrap();
    let banger = root.path().join("banger ssh_config");
    fs::write(&banger, "Host *.vm\n    User root\n    Port 2222\n").unwrap();
    let h = home_with(b"Host *\n    User alice\n    Port 22\n");
    install_include(&h.config, &banger).unwrap();
    let settings = |host: &str| {
        Cmd::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&h.config)
            .arg(host)
            .run()
            .unwrap()
            .stdout_str()
    };
    let vm = settings("dev.vm");
    assert!(vm.lines().any(|l| l == "user root"), "{vm}");
    assert!(vm.lines().any(|l| l == "port 2222"), "{vm}");
    let other = settings("example.com");
    assert!(other.lines().any(|l| l == "user alice"), "{other}");
}
