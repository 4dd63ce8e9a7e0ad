use super::*;

use std::os::unix::fs::PermissionsExt;

fn env_with_home(home: &str) -> PathEnv {
    PathEnv {
        home: Some(home.into()),
        ..PathEnv::default()
    }
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn banger_home_gives_development_layout_under_it() {
    let env = PathEnv {
        banger_home: Some("/tmp/bh".into()),
        // Both must be ignored when BANGER_HOME is set.
        system_install_file_exists: true,
        xdg_config_home: Some("/xdg/config".into()),
        ..env_with_home("/home/u")
    };
    let p = Paths::resolve(&env).unwrap();
    let root = Path::new("/tmp/bh");
    assert_eq!(p, Paths::development(root));
    assert_eq!(p.mode, Mode::Development);
    assert_eq!(p.config_dir, root.join("config"));
    assert_eq!(p.config_file, root.join("config/config.toml"));
    assert_eq!(p.ssh_config, root.join("config/ssh_config"));
    assert_eq!(p.ssh_dir, root.join("state/ssh"));
    assert_eq!(p.state_dir, root.join("state"));
    assert_eq!(p.db_file, root.join("state/banger.db"));
    assert_eq!(p.images_dir, root.join("state/images"));
    assert_eq!(p.kernels_dir, root.join("state/kernels"));
    assert_eq!(p.vms_dir, root.join("state/vms"));
    assert_eq!(p.jail_dir, root.join("state/jail"));
    assert_eq!(p.cache_dir, root.join("cache"));
    assert_eq!(p.run_dir, root.join("run"));
    assert_eq!(p.socket, root.join("run/bangerd.sock"));
    assert_eq!(p.root_helper_socket, root.join("run/bangerd-root.sock"));
    assert_eq!(p.daemon_log, root.join("state/bangerd.log"));
    assert_eq!(p.install_file, None);
    assert_eq!(p.vm_dir("abc123"), root.join("state/vms/abc123"));
}

#[test]
fn relative_banger_home_is_rejected() {
    let env = PathEnv {
        banger_home: Some("relative/bh".into()),
        ..env_with_home("/home/u")
    };
    let err = Paths::resolve(&env).unwrap_err();
    assert!(
        matches!(
            err,
            PathError::NotAbsolute {
                var: "BANGER_HOME",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("BANGER_HOME"), "{err}");
}

#[test]
fn install_file_selects_system_layout() {
    let env = PathEnv {
        system_install_file_exists: true,
        xdg_state_home: Some("/xdg/state".into()),
        ..env_with_home("/home/owner")
    };
    let p = Paths::resolve(&env).unwrap();
    assert_eq!(p, Paths::system(Path::new("/home/owner")));
    assert_eq!(p.mode, Mode::System);
    assert_eq!(p.config_dir, Path::new("/etc/banger"));
    assert_eq!(p.config_file, Path::new("/etc/banger/config.toml"));
    assert_eq!(
        p.install_file.as_deref(),
        Some(Path::new("/etc/banger/install.toml"))
    );
    assert_eq!(
        p.ssh_config,
        Path::new("/home/owner/.config/banger/ssh_config")
    );
    assert_eq!(p.ssh_dir, Path::new("/home/owner/.local/state/banger/ssh"));
    assert_eq!(p.state_dir, Path::new("/var/lib/banger"));
    assert_eq!(p.db_file, Path::new("/var/lib/banger/banger.db"));
    assert_eq!(p.images_dir, Path::new("/var/lib/banger/images"));
    assert_eq!(p.kernels_dir, Path::new("/var/lib/banger/kernels"));
    assert_eq!(p.vms_dir, Path::new("/var/lib/banger/vms"));
    assert_eq!(p.jail_dir, Path::new("/var/lib/banger/jail"));
    assert_eq!(p.cache_dir, Path::new("/var/cache/banger"));
    assert_eq!(p.run_dir, Path::new("/run/banger"));
    assert_eq!(p.socket, Path::new("/run/banger/bangerd.sock"));
    assert_eq!(
        p.root_helper_socket,
        Path::new("/run/banger-root/bangerd-root.sock")
    );
    assert_eq!(p.daemon_log, Path::new("/var/lib/banger/bangerd.log"));
}

#[test]
fn system_layout_needs_the_owner_home() {
    let env = PathEnv {
        system_install_file_exists: true,
        ..PathEnv::default()
    };
    assert!(matches!(Paths::resolve(&env), Err(PathError::NoOwnerHome)));
}

#[test]
fn xdg_layout_defaults_under_home() {
    let p = Paths::resolve(&env_with_home("/home/u")).unwrap();
    assert_eq!(p.mode, Mode::Development);
    assert_eq!(
        p.config_file,
        Path::new("/home/u/.config/banger/config.toml")
    );
    assert_eq!(p.ssh_config, Path::new("/home/u/.config/banger/ssh_config"));
    assert_eq!(p.state_dir, Path::new("/home/u/.local/state/banger"));
    assert_eq!(p.ssh_dir, Path::new("/home/u/.local/state/banger/ssh"));
    assert_eq!(
        p.db_file,
        Path::new("/home/u/.local/state/banger/banger.db")
    );
    assert_eq!(
        p.images_dir,
        Path::new("/home/u/.local/state/banger/images")
    );
    assert_eq!(p.vms_dir, Path::new("/home/u/.local/state/banger/vms"));
    assert_eq!(p.cache_dir, Path::new("/home/u/.cache/banger"));
    assert_eq!(p.run_dir, Path::new("/home/u/.local/state/banger/run"));
    assert_eq!(
        p.socket,
        Path::new("/home/u/.local/state/banger/run/bangerd.sock")
    );
    assert_eq!(p.install_file, None);
}

#[test]
fn xdg_variables_are_honoured_and_relative_ones_ignored() {
    let env = PathEnv {
        xdg_config_home: Some("/x/config".into()),
        xdg_state_home: Some("/x/state".into()),
        xdg_cache_home: Some("relative/cache".into()),
        xdg_runtime_dir: Some("/run/user/1000".into()),
        ..env_with_home("/home/u")
    };
    let p = Paths::resolve(&env).unwrap();
    assert_eq!(p.config_file, Path::new("/x/config/banger/config.toml"));
    assert_eq!(p.db_file, Path::new("/x/state/banger/banger.db"));
    assert_eq!(p.kernels_dir, Path::new("/x/state/banger/kernels"));
    assert_eq!(p.cache_dir, Path::new("/home/u/.cache/banger"));
    assert_eq!(p.run_dir, Path::new("/run/user/1000/banger"));
    assert_eq!(p.socket, Path::new("/run/user/1000/banger/bangerd.sock"));
    assert_eq!(
        p.root_helper_socket,
        Path::new("/run/user/1000/banger/bangerd-root.sock")
    );
}

#[test]
fn no_home_at_all_asks_for_banger_home() {
    let err = Paths::resolve(&PathEnv::default()).unwrap_err();
    assert!(matches!(err, PathError::NoHome));
    assert!(err.to_string().contains("set BANGER_HOME"), "{err}");
    // Empty values count as unset.
    let env = PathEnv {
        banger_home: Some("".into()),
        home: Some("".into()),
        ..PathEnv::default()
    };
    assert!(matches!(Paths::resolve(&env), Err(PathError::NoHome)));
}

#[test]
fn too_long_socket_path_is_refused() {
    // "/run/bangerd.sock" adds 17 bytes, "/run/bangerd-root.sock" 22.
    let at_limit = format!("/{}", "a".repeat(MAX_SOCKET_PATH - 22 - 1));
    let env = PathEnv {
        banger_home: Some(at_limit.clone().into()),
        ..PathEnv::default()
    };
    let p = Paths::resolve(&env).unwrap();
    assert_eq!(p.root_helper_socket.as_os_str().len(), MAX_SOCKET_PATH);

    let env = PathEnv {
        banger_home: Some(format!("{at_limit}b").into()),
        ..PathEnv::default()
    };
    let err = Paths::resolve(&env).unwrap_err();
    assert!(
        matches!(err, PathError::SocketTooLong { len, .. } if len == MAX_SOCKET_PATH + 1),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.contains("shorter") && shown.contains("BANGER_HOME"),
        "{shown}"
    );
}

#[test]
fn ensure_private_dirs_creates_them_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Paths::development(&tmp.path().join("bh"));
    p.ensure_private_dirs().unwrap();
    for dir in [
        &p.run_dir,
        &p.state_dir,
        &p.config_dir,
        &p.ssh_dir,
        &p.cache_dir,
        &p.vms_dir,
        &p.images_dir,
        &p.kernels_dir,
    ] {
        assert!(dir.is_dir(), "{} missing", dir.display());
        assert_eq!(mode_of(dir), 0o700, "{}", dir.display());
    }
    // Idempotent.
    p.ensure_private_dirs().unwrap();
}

#[test]
fn ensure_private_dirs_tightens_existing_run_and_ssh_dirs_only() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Paths::development(tmp.path());
    for dir in [&p.run_dir, &p.ssh_dir, &p.cache_dir] {
        fs::create_dir_all(dir).unwrap();
        fs::set_permissions(dir, Permissions::from_mode(0o755)).unwrap();
    }
    p.ensure_private_dirs().unwrap();
    assert_eq!(mode_of(&p.run_dir), 0o700);
    assert_eq!(mode_of(&p.ssh_dir), 0o700);
    // An existing cache dir keeps the mode its owner chose.
    assert_eq!(mode_of(&p.cache_dir), 0o755);
}

#[test]
fn ensure_private_dirs_reports_the_failing_path() {
    let tmp = tempfile::tempdir().unwrap();
    // A file where the root should be: nothing below it can be created.
    let blocker = tmp.path().join("file");
    fs::write(&blocker, "").unwrap();
    let err = Paths::development(&blocker)
        .ensure_private_dirs()
        .unwrap_err();
    assert!(matches!(err, PathError::CreateDir { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&blocker.display().to_string()),
        "{err}"
    );
}
