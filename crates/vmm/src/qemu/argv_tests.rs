use std::path::PathBuf;

use super::*;

/// A typical VM: TCG-friendly, qcow2 root, initrd, no work disk, no network.
pub(crate) fn config() -> VmConfig {
    VmConfig {
        id: "vm1".into(),
        vcpu: 2,
        memory_mib: 1024,
        kernel: "/var/lib/banger/kernels/k/bzImage".into(),
        initrd: Some("/var/lib/banger/kernels/k/initrd.img".into()),
        kernel_args: "banger.root=/dev/vda banger.init=/usr/local/bin/banger-agent".into(),
        root_disk: DiskSpec {
            path: "/run/b/vm1/root.qcow2".into(),
            format: DiskFormat::Qcow2,
            read_only: false,
        },
        work_disk: None,
        modules_disk: None,
        tap: None,
        mac: None,
        vsock_cid: 7,
        run_dir: "/run/b/vm1".into(),
    }
}

fn argv(config: &VmConfig, accel: Accel, tsc: Option<u64>) -> Vec<String> {
    build(config, &RunPaths::new(&config.run_dir), accel, tsc).unwrap()
}

/// Every value given to `flag`, in order.
fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

fn one<'a>(args: &'a [String], flag: &str) -> &'a str {
    let found = values(args, flag);
    assert_eq!(found.len(), 1, "{flag} in {args:?}");
    found[0]
}

#[test]
fn tcg_line_is_the_reference_boot() {
    let args = argv(&config(), Accel::Tcg, Some(2_300_000));
    let expected: Vec<&str> = vec![
        "-M",
        "microvm,acpi=on",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        "1024M",
        "-smp",
        "2",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        "/var/lib/banger/kernels/k/bzImage",
        "-initrd",
        "/var/lib/banger/kernels/k/initrd.img",
        "-append",
        "console=ttyS0 reboot=t panic=-1 banger.channel=serial tsc_early_khz=2300000 \
         banger.root=/dev/vda banger.init=/usr/local/bin/banger-agent",
        "-chardev",
        "file,id=console,path=/run/b/vm1/console.log",
        "-serial",
        "chardev:console",
        "-device",
        "i8042",
        "-drive",
        "id=vda,file=/run/b/vm1/root.qcow2,format=qcow2,if=none",
        "-device",
        "virtio-blk-device,drive=vda",
        "-device",
        "virtio-serial-device,max_ports=2",
        "-chardev",
        "socket,id=agent,path=/run/b/vm1/agent-port.sock,reconnect=1",
        "-device",
        "virtserialport,chardev=agent,name=org.banger.agent",
        "-chardev",
        "socket,id=qmp,path=/run/b/vm1/qmp.sock,server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
        "-pidfile",
        "/run/b/vm1/qemu.pid",
    ];
    assert_eq!(args, expected);
}

#[test]
fn kvm_uses_the_host_cpu_and_no_tsc_hint() {
    let args = argv(&config(), Accel::Kvm, Some(2_300_000));
    assert_eq!(one(&args, "-accel"), "kvm");
    assert_eq!(one(&args, "-cpu"), "host");
    assert!(!one(&args, "-append").contains("tsc_early_khz"));
}

#[test]
fn tcg_without_a_known_tsc_still_boots_the_same_line() {
    let args = argv(&config(), Accel::Tcg, None);
    assert_eq!(
        one(&args, "-append"),
        "console=ttyS0 reboot=t panic=-1 banger.channel=serial banger.root=/dev/vda banger.init=/usr/local/bin/banger-agent"
    );
}

#[test]
fn empty_kernel_args_leave_no_trailing_space() {
    let c = VmConfig {
        kernel_args: "  ".into(),
        ..config()
    };
    assert_eq!(
        kernel_cmdline(&c, Accel::Kvm, None),
        "console=ttyS0 reboot=t panic=-1 banger.channel=serial"
    );
}

#[test]
fn work_disk_is_vdb_and_raw_read_only_is_spelled_out() {
    let c = VmConfig {
        root_disk: DiskSpec {
            path: "/dev/mapper/banger-vm1".into(),
            format: DiskFormat::Raw,
            read_only: true,
        },
        work_disk: Some(DiskSpec {
            path: "/run/b/vm1/work.ext4".into(),
            format: DiskFormat::Raw,
            read_only: false,
        }),
        ..config()
    };
    let args = argv(&c, Accel::Tcg, None);
    assert_eq!(
        values(&args, "-drive"),
        [
            "id=vda,file=/dev/mapper/banger-vm1,format=raw,if=none,readonly=on",
            "id=vdb,file=/run/b/vm1/work.ext4,format=raw,if=none",
        ]
    );
    let devices = values(&args, "-device");
    assert_eq!(
        devices[1..3],
        ["virtio-blk-device,drive=vda", "virtio-blk-device,drive=vdb"]
    );
}

#[test]
fn the_modules_disk_follows_the_work_disk_read_only() {
    let disk = |path: &str, read_only| DiskSpec {
        path: path.into(),
        format: DiskFormat::Raw,
        read_only,
    };
    let c = VmConfig {
        work_disk: Some(disk("/run/b/vm1/work.ext4", false)),
        modules_disk: Some(disk("/k/modules.ext4", true)),
        ..config()
    };
    let args = argv(&c, Accel::Tcg, None);
    assert_eq!(
        values(&args, "-drive")[1..],
        [
            "id=vdb,file=/run/b/vm1/work.ext4,format=raw,if=none",
            "id=modules,file=/k/modules.ext4,format=raw,if=none,readonly=on",
        ]
    );
    let devices = values(&args, "-device");
    assert_eq!(
        devices[1..4],
        [
            "virtio-blk-device,drive=vda",
            "virtio-blk-device,drive=vdb",
            "virtio-blk-device,drive=modules"
        ]
    );
}

#[test]
fn without_initrd_there_is_no_initrd_flag() {
    let c = VmConfig {
        initrd: None,
        ..config()
    };
    assert!(values(&argv(&c, Accel::Tcg, None), "-initrd").is_empty());
}

#[test]
fn tap_gives_a_virtio_net_device_with_the_mac() {
    let c = VmConfig {
        tap: Some("fctap3".into()),
        mac: Some("02:fc:00:00:00:03".into()),
        ..config()
    };
    let args = argv(&c, Accel::Tcg, None);
    assert_eq!(
        one(&args, "-netdev"),
        "tap,id=net0,ifname=fctap3,script=no,downscript=no"
    );
    assert!(
        values(&args, "-device").contains(&"virtio-net-device,netdev=net0,mac=02:fc:00:00:00:03")
    );

    let no_mac = VmConfig { mac: None, ..c };
    let args = argv(&no_mac, Accel::Tcg, None);
    assert!(values(&args, "-device").contains(&"virtio-net-device,netdev=net0"));
    assert!(values(&argv(&config(), Accel::Tcg, None), "-netdev").is_empty());
}

#[test]
fn commas_are_doubled_in_option_values_only() {
    let dir = PathBuf::from("/tmp/a,b");
    let c = VmConfig {
        kernel: dir.join("bz,Image"),
        root_disk: DiskSpec {
            path: dir.join("root,1.qcow2"),
            format: DiskFormat::Qcow2,
            read_only: false,
        },
        run_dir: dir.clone(),
        ..config()
    };
    let args = argv(&c, Accel::Tcg, None);
    assert_eq!(one(&args, "-kernel"), "/tmp/a,b/bz,Image");
    assert_eq!(one(&args, "-pidfile"), "/tmp/a,b/qemu.pid");
    assert_eq!(
        one(&args, "-drive"),
        "id=vda,file=/tmp/a,,b/root,,1.qcow2,format=qcow2,if=none"
    );
    let chardevs = values(&args, "-chardev");
    assert_eq!(
        chardevs,
        [
            "file,id=console,path=/tmp/a,,b/console.log",
            "socket,id=agent,path=/tmp/a,,b/agent-port.sock,reconnect=1",
            "socket,id=qmp,path=/tmp/a,,b/qmp.sock,server=on,wait=off",
        ]
    );
}

#[test]
fn relative_and_non_utf8_paths_are_refused() {
    let relative = VmConfig {
        kernel: "bzImage".into(),
        ..config()
    };
    let err = build(
        &relative,
        &RunPaths::new(&relative.run_dir),
        Accel::Tcg,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not an absolute path"), "{err}");

    use std::os::unix::ffi::OsStrExt;
    let mut bad = config();
    bad.root_disk.path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/run/b/\xff.qcow2"));
    let err = build(&bad, &RunPaths::new(&bad.run_dir), Accel::Tcg, None).unwrap_err();
    assert!(err.to_string().contains("not valid UTF-8"), "{err}");
}

#[test]
fn invalid_values_are_refused_before_building() {
    let c = VmConfig {
        vsock_cid: 2,
        ..config()
    };
    let err = build(&c, &RunPaths::new(&c.run_dir), Accel::Tcg, None).unwrap_err();
    assert!(matches!(err, VmmError::InvalidConfig(_)), "{err:?}");
    let long = VmConfig {
        kernel_args: "x".repeat(2020),
        ..config()
    };
    let err = build(&long, &RunPaths::new(&long.run_dir), Accel::Tcg, Some(1)).unwrap_err();
    assert!(err.to_string().contains("kernel keeps only"), "{err}");
}

#[test]
fn with_a_log_capper_the_console_is_stdout_and_no_log_file_is_named() {
    let config = config();
    let args = build_with(
        &config,
        &RunPaths::new(&config.run_dir),
        Accel::Tcg,
        None,
        Console::Stdout,
    )
    .unwrap();
    let chardevs = values(&args, "-chardev");
    assert_eq!(chardevs[0], "stdio,id=console,signal=off");
    assert_eq!(one(&args, "-serial"), "chardev:console");
    // QEMU itself opens no log: the cappers write console.log and qemu.log.
    assert!(
        !args
            .iter()
            .any(|a| a.contains("console.log") || a.contains("qemu.log")),
        "{args:?}"
    );
    // Everything else is the same line.
    let file = argv(&config, Accel::Tcg, None);
    assert_eq!(args.len(), file.len());
    let differing: Vec<_> = args.iter().zip(&file).filter(|(a, b)| a != b).collect();
    assert_eq!(differing.len(), 1, "{differing:?}");
}
