use super::*;
use proptest::prelude::*;

const FILE: &str = "/cfg/config.toml";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE))
}

/// Asserts `text` is rejected at `line`, about `key`, with `needle` in the
/// message, and that the rendered error leads with `file:line: `.
fn assert_rejected(text: &str, line: usize, key: &str, needle: &str) -> ConfigError {
    let err = parse(text).expect_err(text);
    assert_eq!(err.line(), Some(line), "line for {text:?}: {err}");
    assert_eq!(err.key(), Some(key), "key for {text:?}: {err}");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{FILE}:{line}: ")), "{shown}");
    assert!(shown.contains(needle), "{needle:?} not in {shown:?}");
    err
}

const FULL: &str = r#"
log_level = "debug"
vmm = "qemu"
firecracker_bin = "/opt/fc/firecracker"
jailer_bin = "jailer"
qemu_bin = "/usr/bin/qemu-system-x86_64"
jailer_enabled = true
jailer_chroot_base = "/srv/jail"
ssh_key_path = "/home/u/.ssh/id_ed25519"
default_image_name = "alpine-3.20"
default_kernel_name = "vanilla-6.6"
catalog_url = "https://example.org/catalog.json"
debian_mirror = "https://mirror.example/debian"
auto_stop_stale_after = "2h"
stats_poll_interval = "10s"
bridge_name = "br-fc-dev"
bridge_ip = "10.20.0.1"
cidr = 16
tap_pool_size = 8
default_dns = "9.9.9.9"
dns_listen = "127.0.0.1:5353"
warm_cache = false
warm_cache_size = "20G"

[vm_defaults]
vcpu = 2
memory_mib = 2048
disk_size = "20G"
system_overlay_size = "4G"

[[file_sync]]
host = "~/.gitconfig"
guest = "/root/.gitconfig"
mode = "0644"

[[file_sync]]
host = ".config/gh/hosts.yml"
guest = "/root/.config/gh/hosts.yml"
"#;

#[test]
fn every_key_parses() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.source(), Some(Path::new(FILE)));
    assert_eq!(c.log_level(), LogLevel::Debug);
    assert_eq!(c.vmm(), Vmm::Qemu);
    assert_eq!(c.firecracker_bin(), Some(Path::new("/opt/fc/firecracker")));
    assert_eq!(c.jailer_bin(), Some(Path::new("jailer")));
    assert_eq!(c.qemu_bin(), Some(Path::new("/usr/bin/qemu-system-x86_64")));
    assert!(c.jailer_enabled());
    assert_eq!(c.jailer_chroot_base(), Some(Path::new("/srv/jail")));
    assert_eq!(c.ssh_key_path(), Some(Path::new("/home/u/.ssh/id_ed25519")));
    assert_eq!(c.default_image_name(), "alpine-3.20");
    assert_eq!(c.default_kernel_name(), "vanilla-6.6");
    assert_eq!(c.catalog_url(), Some("https://example.org/catalog.json"));
    assert_eq!(c.debian_mirror(), "https://mirror.example/debian");
    assert_eq!(c.auto_stop_stale_after(), Some(Duration::from_secs(7200)));
    assert_eq!(c.stats_poll_interval(), Some(Duration::from_secs(10)));
    assert_eq!(c.bridge_name(), "br-fc-dev");
    assert_eq!(c.bridge_ip(), Ipv4Addr::new(10, 20, 0, 1));
    assert_eq!(c.cidr_prefix(), 16);
    assert_eq!(c.tap_pool_size(), 8);
    assert_eq!(c.default_dns(), Ipv4Addr::new(9, 9, 9, 9));
    assert_eq!(c.dns_listen().to_string(), "127.0.0.1:5353");
    assert!(!c.warm_cache());
    assert_eq!(c.warm_cache_size().mib(), 20 * 1024);
    let vd = c.vm_defaults();
    assert_eq!(vd.vcpu(), Some(2));
    assert_eq!(vd.memory_mib(), Some(2048));
    assert_eq!(vd.disk_size().map(|s| s.mib()), Some(20 * 1024));
    assert_eq!(vd.system_overlay_size().map(|s| s.mib()), Some(4 * 1024));
    let fs = c.file_sync();
    assert_eq!(fs.len(), 2);
    assert_eq!(fs[0].guest(), Path::new("/root/.gitconfig"));
    assert_eq!(fs[0].mode(), 0o644);
    assert_eq!(fs[0].line(), 32);
    assert_eq!(fs[1].mode(), 0o600, "mode defaults to 0600");
    assert_eq!(fs[1].host().to_string(), "~/.config/gh/hosts.yml");
}

#[test]
fn empty_file_gives_spec_defaults() {
    let c = parse("# nothing set\n").unwrap();
    assert_eq!(c.log_level(), LogLevel::Info);
    assert_eq!(c.vmm(), Vmm::Auto);
    assert!(!c.jailer_enabled());
    assert_eq!(c.default_image_name(), "debian-bookworm");
    assert_eq!(c.default_kernel_name(), "debian-cloud-amd64");
    assert_eq!(c.bridge_name(), "br-fc");
    assert_eq!(c.bridge_ip(), Ipv4Addr::new(172, 16, 0, 1));
    assert_eq!(c.cidr_prefix(), 24);
    assert_eq!(c.tap_pool_size(), 4);
    assert_eq!(c.default_dns(), Ipv4Addr::new(1, 1, 1, 1));
    assert_eq!(c.dns_listen().to_string(), "127.0.0.1:42069");
    assert!(c.warm_cache());
    assert_eq!(c.warm_cache_size().mib(), 8 * 1024);
    assert_eq!(c.firecracker_bin(), None);
    assert_eq!(c.catalog_url(), None);
    assert_eq!(c.auto_stop_stale_after(), None);
    assert_eq!(c.stats_poll_interval(), None);
    assert_eq!(c.vm_defaults(), &VmDefaultsConfig::default());
    assert!(c.file_sync().is_empty());
}

#[test]
fn load_missing_file_gives_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let c = Config::load(&dir.path().join("config.toml")).unwrap();
    assert_eq!(c.source(), None);
    assert_eq!(c.bridge_name(), "br-fc");
    assert_eq!(c.default_image_name(), "debian-bookworm");
}

#[test]
fn load_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "tap_pool_size = 2\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().tap_pool_size(), 2);
    std::fs::write(&path, "\ntap_pool_size = 99\n").unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: key \"tap_pool_size\"", path.display())),
        "{err}"
    );
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: exists, but cannot be read.
    let err = Config::load(dir.path()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { ref path, .. } if path == dir.path()));
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[test]
fn unknown_top_level_key_names_file_line_and_key() {
    let err = assert_rejected(
        "log_level = \"info\"\n\nbridge_nam = \"br-fc\"\n",
        3,
        "bridge_nam",
        "unknown key \"bridge_nam\" (expected one of `log_level`",
    );
    assert!(matches!(err, ConfigError::UnknownKey { .. }));
    // An unknown table is an unknown key too.
    assert_rejected("\n[network]\nx = 1\n", 2, "network", "unknown key");
}

#[test]
fn unknown_key_in_vm_defaults() {
    assert_rejected(
        "cidr = 24\n[vm_defaults]\nvcpu = 2\ncpus = 4\n",
        4,
        "vm_defaults.cpus",
        "unknown key \"vm_defaults.cpus\" (expected one of `vcpu`, `memory_mib`",
    );
    assert_rejected("vm_defaults.ram = 1\n", 1, "vm_defaults.ram", "unknown key");
}

#[test]
fn unknown_key_in_file_sync() {
    let text = "[[file_sync]]\nhost = \"a\"\nguest = \"/root/a\"\n\n[[file_sync]]\nhost = \"b\"\nguest = \"/root/b\"\nperm = \"0600\"\n";
    assert_rejected(
        text,
        8,
        "file_sync.perm",
        "(expected one of `host`, `guest`, `mode`)",
    );
}

#[test]
fn bad_values_point_at_their_line() {
    let pad = "# comment\n\n";
    let cases: &[(&str, &str, &str)] = &[
        (
            "log_level = \"loud\"",
            "log_level",
            "unknown log level \"loud\"",
        ),
        ("vmm = \"kvm\"", "vmm", "unknown vmm \"kvm\""),
        ("cidr = 7", "cidr", "prefix length 7 is out of range 8..=32"),
        (
            "cidr = 33",
            "cidr",
            "prefix length 33 is out of range 8..=32",
        ),
        ("cidr = \"24\"", "cidr", "invalid type"),
        ("bridge_name = \"eth0\"", "bridge_name", "must be \"br-fc\""),
        (
            "bridge_name = \"br-fc-0123456789\"",
            "bridge_name",
            "at most 15",
        ),
        (
            "bridge_ip = \"172.16.0\"",
            "bridge_ip",
            "not an IPv4 address",
        ),
        (
            "dns_listen = \"[::1]:53\"",
            "dns_listen",
            "not an IPv4 address and port",
        ),
        (
            "default_dns = \"dns.google\"",
            "default_dns",
            "not an IPv4 address",
        ),
        ("tap_pool_size = 65", "tap_pool_size", "out of range 0..=64"),
        ("jailer_enabled = \"yes\"", "jailer_enabled", "invalid type"),
        (
            "catalog_url = \"http://x/c.json\"",
            "catalog_url",
            "https:// or file://",
        ),
        (
            "auto_stop_stale_after = \"30\"",
            "auto_stop_stale_after",
            "has no unit",
        ),
        (
            "auto_stop_stale_after = \"2 weeks\"",
            "auto_stop_stale_after",
            "unknown unit",
        ),
        (
            "stats_poll_interval = \"0s\"",
            "stats_poll_interval",
            "greater than zero",
        ),
        ("firecracker_bin = \"./fc\"", "firecracker_bin", "relative"),
        (
            "jailer_chroot_base = \"jail\"",
            "jailer_chroot_base",
            "must be absolute",
        ),
        (
            "ssh_key_path = \"~/.ssh/id\"",
            "ssh_key_path",
            "must be absolute",
        ),
        (
            "default_image_name = \"../etc\"",
            "default_image_name",
            "single word",
        ),
        (
            "[vm_defaults]\nvcpu = 65",
            "vm_defaults.vcpu",
            "out of range 1..=64",
        ),
        (
            "[vm_defaults]\nmemory_mib = 64",
            "vm_defaults.memory_mib",
            "below the minimum",
        ),
        (
            "[vm_defaults]\ndisk_size = \"8X\"",
            "vm_defaults.disk_size",
            "unknown unit \"X\"",
        ),
        (
            "[vm_defaults]\nsystem_overlay_size = \"0\"",
            "vm_defaults.system_overlay_size",
            "greater than zero",
        ),
    ];
    for &(body, key, needle) in cases {
        let text = format!("{pad}{body}\n");
        // The value sits on the body's last line.
        let line = text.lines().count();
        assert_rejected(&text, line, key, needle);
    }
}

#[test]
fn bad_file_sync_entries_point_at_their_line() {
    let entry = |host: &str, guest: &str, mode: &str| {
        format!(
            "[[file_sync]]\nhost = \"~/.ok\"\nguest = \"/root/.ok\"\n\n[[file_sync]]\nhost = {host}\nguest = {guest}\nmode = {mode}\n"
        )
    };
    let ok_host = "\"~/.x\"";
    let ok_guest = "\"/root/.x\"";
    assert_rejected(
        &entry(ok_host, "\"/etc/x\"", "\"0600\""),
        7,
        "file_sync.guest",
        "under /root/",
    );
    assert_rejected(
        &entry(ok_host, "\"/root/../etc/x\"", "\"0600\""),
        7,
        "file_sync.guest",
        "\"..\"",
    );
    assert_rejected(
        &entry("\"~/../x\"", ok_guest, "\"0600\""),
        6,
        "file_sync.host",
        "\"..\"",
    );
    assert_rejected(
        &entry("\"a/../../x\"", ok_guest, "\"0600\""),
        6,
        "file_sync.host",
        "\"..\"",
    );
    assert_rejected(
        &entry(ok_host, ok_guest, "\"0999\""),
        8,
        "file_sync.mode",
        "not an octal number",
    );
    assert_rejected(
        &entry(ok_host, ok_guest, "\"1777\""),
        8,
        "file_sync.mode",
        "above 0777",
    );
    assert_rejected(
        &entry(ok_host, ok_guest, "600"),
        8,
        "file_sync.mode",
        "octal mode string",
    );
    // A required key missing: the entry's header line.
    assert_rejected(
        "[[file_sync]]\nhost = \"~/.x\"\nguest = \"/root/.x\"\n\n[[file_sync]]\nhost = \"~/.y\"\n",
        5,
        "file_sync",
        "missing field `guest`",
    );
}

#[test]
fn bridge_ip_must_be_a_host_address_of_its_subnet() {
    assert_rejected(
        "cidr = 24\nbridge_ip = \"172.16.0.0\"\n",
        2,
        "bridge_ip",
        "network address of 172.16.0.0/24",
    );
    assert_rejected(
        "bridge_ip = \"10.0.0.255\"\n",
        1,
        "bridge_ip",
        "broadcast address of 10.0.0.0/24",
    );
    // With bridge_ip left at its default, the cidr that breaks it is blamed.
    assert_rejected("\n\ncidr = 32\n", 3, "cidr", "172.16.0.1");
    assert!(parse("bridge_ip = \"10.0.0.254\"\ncidr = 24\n").is_ok());
}

#[test]
fn syntax_errors_carry_the_line() {
    let err = parse("cidr = 24\n\nbridge_name = br-fc\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().starts_with(&format!("{FILE}:3: ")), "{err}");
    let dup = parse("cidr = 24\ncidr = 25\n").unwrap_err();
    assert_eq!(dup.line(), Some(2), "{dup}");
}

#[test]
fn env_overrides_log_level() {
    let c = parse("log_level = \"warn\"\n").unwrap();
    assert_eq!(c.log_level_with_env(None).unwrap(), LogLevel::Warn);
    assert_eq!(c.log_level_with_env(Some("")).unwrap(), LogLevel::Warn);
    assert_eq!(
        c.log_level_with_env(Some("trace")).unwrap(),
        LogLevel::Trace
    );
    assert_eq!(
        c.log_level_with_env(Some("ERROR")).unwrap(),
        LogLevel::Error
    );
    assert_eq!(
        Config::default().log_level_with_env(None).unwrap(),
        LogLevel::Info
    );
}

#[test]
fn bad_env_log_level_names_the_variable() {
    let err = Config::default()
        .log_level_with_env(Some("verbose"))
        .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Env {
            var: "BANGER_LOG_LEVEL",
            ..
        }
    ));
    let shown = err.to_string();
    assert!(shown.contains("BANGER_LOG_LEVEL"), "{shown}");
    assert!(shown.contains("\"verbose\""), "{shown}");
}

#[test]
fn auto_stop_zero_means_off() {
    let c = parse("auto_stop_stale_after = \"0\"\n").unwrap();
    assert_eq!(c.auto_stop_stale_after(), None);
    let c = parse("auto_stop_stale_after = \"1d\"\n").unwrap();
    assert_eq!(c.auto_stop_stale_after(), Some(Duration::from_secs(86_400)));
}

#[test]
fn file_sync_resolves_against_the_owner_home() {
    let text = "[[file_sync]]\nhost = \"~/.a\"\nguest = \"/root/.a\"\n\n[[file_sync]]\nhost = \"/home/u/.b\"\nguest = \"/root/.b\"\nmode = \"400\"\n";
    let c = parse(text).unwrap();
    let resolved = c.resolve_file_sync(Path::new("/home/u")).unwrap();
    assert_eq!(
        resolved,
        vec![
            ResolvedFileSync {
                host: "/home/u/.a".into(),
                guest: "/root/.a".into(),
                mode: 0o600
            },
            ResolvedFileSync {
                host: "/home/u/.b".into(),
                guest: "/root/.b".into(),
                mode: 0o400
            },
        ]
    );
    // For another owner the absolute entry is outside the home: an error at
    // that entry's host line.
    let err = c.resolve_file_sync(Path::new("/home/v")).unwrap_err();
    assert_eq!(err.line(), Some(6));
    assert_eq!(err.key(), Some("file_sync.host"));
    assert!(err.to_string().starts_with(&format!("{FILE}:6: ")), "{err}");
    assert!(
        err.to_string().contains("outside the owner's home"),
        "{err}"
    );
}

#[test]
fn missing_host_file_is_a_warning_not_an_error() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".present"), "x").unwrap();
    let text = "[[file_sync]]\nhost = \"~/.present\"\nguest = \"/root/.present\"\n[[file_sync]]\nhost = \"~/.absent\"\nguest = \"/root/.absent\"\n";
    let c = parse(text).unwrap();
    let warnings = c.file_sync_warnings(home.path());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!("{FILE}:5: ")),
        "{warnings:?}"
    );
    assert!(warnings[0].contains(".absent") && warnings[0].contains("does not exist"));
    std::fs::write(home.path().join(".absent"), "x").unwrap();
    assert!(c.file_sync_warnings(home.path()).is_empty());
}

#[test]
fn serializes_with_config_key_names() {
    let c = parse(FULL).unwrap();
    let v = toml::Value::try_from(&c).unwrap();
    assert_eq!(v["log_level"].as_str(), Some("debug"));
    assert_eq!(v["bridge_ip"].as_str(), Some("10.20.0.1"));
    assert_eq!(v["cidr"].as_integer(), Some(16));
    assert_eq!(v["auto_stop_stale_after"].as_str(), Some("2h"));
    assert_eq!(v["vm_defaults"]["disk_size"].as_str(), Some("20G"));
    assert_eq!(v["file_sync"][0]["host"].as_str(), Some("~/.gitconfig"));
    assert_eq!(v["file_sync"][1]["mode"].as_str(), Some("0600"));
    assert!(v.get("source").is_none());
    // What is shown parses back to the same settings.
    let again = parse(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(toml::Value::try_from(&again).unwrap(), v);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn config_like_text_never_panics(
        lines in proptest::collection::vec(
            (
                prop::sample::select(vec![
                    "log_level", "vmm", "cidr", "bridge_ip", "bridge_name", "tap_pool_size",
                    "[vm_defaults]", "[[file_sync]]", "host", "guest", "mode", "vcpu",
                    "memory_mib", "disk_size", "stats_poll_interval", "x",
                ]),
                "(\"[^\"\\n]{0,12}\"|-?[0-9]{1,20}|true|\\[\\]|\\{\\})",
            ),
            0..12,
        )
    ) {
        let text: String = lines
            .iter()
            .map(|(k, v)| if k.starts_with('[') { format!("{k}\n") } else { format!("{k} = {v}\n") })
            .collect();
        if let Err(e) = parse(&text) {
            // Every content error points somewhere inside the text.
            let line = e.line().expect("errors about the text have a line");
            prop_assert!(line >= 1 && line <= text.lines().count().max(1));
        }
    }
}
