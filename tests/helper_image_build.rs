//! An unprivileged daemon's image build (SPEC §9.3 needs mmdebstrap as
//! root): the root helper, started as its unit starts it, builds the
//! minimal image into a throwaway owner's store for real, and everything it
//! leaves there is the owner's, so that daemon can use and delete it.
//!
//! The helper runs in the host's network namespace here because the build
//! downloads from the Debian mirror; it is only asked to build, never to
//! touch a link. Needs root, mmdebstrap and `BANGER_AGENT_BIN`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use banger_host::ManagedRoots;
use banger_host::helper::{BuildName, BuildVariant, HelperHost, ImageBuildRequest, MirrorUrl};

const OWNER: u32 = 4246;
const IMAGE: &str = "debian-bookworm-minimal";

fn missing() -> Option<String> {
    if !common::is_root() {
        return Some("needs root".into());
    }
    if banger_sys::find_program("mmdebstrap").is_none() {
        return Some("needs mmdebstrap".into());
    }
    std::env::var_os("BANGER_AGENT_BIN")
        .is_none()
        .then(|| "BANGER_AGENT_BIN is not set (scripts/test builds it)".into())
}

/// Every entry under `dir` that is not the owner's.
fn not_owned(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        if meta.uid() != OWNER {
            found.push(format!("{} (uid {})", entry.path().display(), meta.uid()));
        }
        if meta.is_dir() {
            found.extend(not_owned(&entry.path()));
        }
    }
    found
}

#[test]
fn the_root_helper_builds_an_image_for_an_unprivileged_owner() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (state, cache) = (dir.path().join("state"), dir.path().join("cache"));
    for sub in [state.join("images"), cache.join("downloads")] {
        std::fs::create_dir_all(&sub).unwrap();
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{OWNER}:{OWNER}")])
        .arg(&state)
        .arg(&cache)
        .status()
        .unwrap();
    assert!(status.success());
    let socket = dir.path().join("helper.sock");
    let mut helper = Command::new(common::BANGERD)
        .args(["--root-helper", "--owner-uid", &OWNER.to_string()])
        .arg("--managed-root")
        .arg(&state)
        .arg("--managed-root")
        .arg(&cache)
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    assert!(common::wait_until(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    }));

    let roots = ManagedRoots::new([state.clone(), cache.clone()]).unwrap();
    let managed = |p: &Path| banger_host::ManagedPath::new(p, &roots).unwrap();
    let request = ImageBuildRequest {
        images_dir: managed(&state.join("images")),
        cache_dir: managed(&cache.join("downloads")),
        name: BuildName::try_from(IMAGE.to_owned()).unwrap(),
        variant: BuildVariant::Minimal,
        mirror: MirrorUrl::try_from(banger_config::Config::default().debian_mirror().to_owned())
            .unwrap(),
        kernel_ref: BuildName::try_from("debian-cloud-amd64".to_owned()).unwrap(),
        force: false,
    };
    let started = Instant::now();
    let built = HelperHost::new(&socket).build_image(request);
    let _ = helper.kill();
    let _ = helper.wait();
    assert!(built.expect("the helper built the image"), "it built one");
    println!(
        "minimal image built by the helper in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let image = state.join("images").join(IMAGE);
    for file in ["manifest.json", "rootfs.ext4"] {
        assert!(image.join(file).is_file(), "{file} missing");
    }
    let left = not_owned(&state);
    assert!(
        left.is_empty(),
        "root left files the owner cannot manage: {left:?}"
    );
    // The filesystem inside keeps root's ownership: the guest's /etc.
    let fs = banger_image::Ext4Image::open(&image.join("rootfs.ext4")).unwrap();
    let etc = fs.stat("/etc/passwd").unwrap().unwrap();
    assert_eq!((etc.uid, etc.gid), (0, 0));
}
