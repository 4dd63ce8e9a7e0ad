//! QEMU's command line for one VM, built without side effects.
//!
//! Mirrors the plain boot in `tests/boot_tcg.rs`: a microvm with ACPI (the
//! Debian kernel finds its virtio-mmio devices only through ACPI), no
//! default devices, an exit instead of a reboot, and the agent's channel on
//! a virtio-serial port (`banger_agent_proto::mux`) rather than a
//! vhost-user vsock device, which QEMU cannot snapshot.
//!
//! Values inside QEMU's `key=value,...` options escape a comma by doubling
//! it. `-kernel`, `-initrd`, `-append` and `-pidfile` take their argument
//! verbatim. Paths must be absolute: a relative `file=` with a colon could
//! be read as a protocol prefix (`nbd:...`).

use std::path::Path;

use super::Accel;
use super::paths::RunPaths;
use super::validate;
use crate::{DiskFormat, DiskSpec, VmConfig, VmmError};

/// The console and timing arguments the driver adds before banger's own,
/// and where the agent finds its channel.
const BASE_KERNEL_ARGS: &str = "console=ttyS0 reboot=t panic=-1 banger.channel=serial";
/// The virtio-serial port's name, which the agent looks for in
/// `/sys/class/virtio-ports/*/name`.
pub const AGENT_PORT_NAME: &str = "org.banger.agent";

/// A path as a QEMU option value: UTF-8 and absolute, commas doubled.
pub fn option_value(path: &Path) -> Result<String, VmmError> {
    verbatim(path).map(|p| p.replace(',', ",,"))
}

/// A path passed as a whole argument: UTF-8 and absolute.
fn verbatim(path: &Path) -> Result<String, VmmError> {
    if !path.is_absolute() {
        return Err(VmmError::InvalidConfig(format!(
            "{} is not an absolute path",
            path.display()
        )));
    }
    path.to_str().map(str::to_owned).ok_or_else(|| {
        VmmError::InvalidConfig(format!(
            "{} is not valid UTF-8, which QEMU's option syntax needs",
            path.display()
        ))
    })
}

/// The guest kernel's command line: console and panic handling, the TSC
/// frequency under TCG (see `tsc`), then banger's arguments.
pub fn kernel_cmdline(config: &VmConfig, accel: Accel, tsc_khz: Option<u64>) -> String {
    let mut parts = vec![BASE_KERNEL_ARGS.to_owned()];
    if let (Accel::Tcg, Some(khz)) = (accel, tsc_khz) {
        parts.push(format!("tsc_early_khz={khz}"));
    }
    let own = config.kernel_args.trim();
    if !own.is_empty() {
        parts.push(own.to_owned());
    }
    parts.join(" ")
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// QEMU writes `console.log` itself (unbounded; without a log capper).
    File,
    /// QEMU's stdout, a pipe to the console's log capper
    /// (`crate::logcap`); QEMU's stderr is the pipe to its own log's capper.
    Stdout,
}

/// The full argv after the program name, the console written to a file.
pub fn build(
    config: &VmConfig,
    paths: &RunPaths,
    accel: Accel,
    tsc_khz: Option<u64>,
) -> Result<Vec<String>, VmmError> {
    build_with(config, paths, accel, tsc_khz, Console::File)
}

/// The full argv after the program name.
pub fn build_with(
    config: &VmConfig,
    paths: &RunPaths,
    accel: Accel,
    tsc_khz: Option<u64>,
    console: Console,
) -> Result<Vec<String>, VmmError> {
    validate::check_values(config, paths)?;
    let cmdline = kernel_cmdline(config, accel, tsc_khz);
    validate::check_kernel_cmdline(&cmdline)?;
    let mem = config.memory_mib;
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| (*s).to_owned()));

    push(&["-M", "microvm,acpi=on", "-accel", accel.as_str()]);
    push(&["-cpu", if accel == Accel::Kvm { "host" } else { "max" }]);
    push(&["-m", &format!("{mem}M"), "-smp", &config.vcpu.to_string()]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    push(&["-kernel", &verbatim(&config.kernel)?]);
    if let Some(initrd) = &config.initrd {
        push(&["-initrd", &verbatim(initrd)?]);
    }
    push(&["-append", &cmdline]);
    let console = match console {
        Console::File => format!("file,id=console,path={}", option_value(&paths.console_log)?),
        // `signal=off`: a byte from stdin (/dev/null: none) never stops QEMU.
        Console::Stdout => "stdio,id=console,signal=off".to_owned(),
    };
    push(&["-chardev", &console, "-serial", "chardev:console"]);
    // A PS/2 controller only so `send-key` can press Ctrl-Alt-Del: the
    // guest's init turns that into an orderly power-off (a systemd guest
    // reboots, which `-no-reboot` turns into an exit), like Firecracker's
    // SendCtrlAltDel. Images without systemd do not act on the ACPI button.
    push(&["-device", "i8042"]);
    push(
        &drive("vda", &config.root_disk)?
            .each_ref()
            .map(String::as_str),
    );
    if let Some(work) = &config.work_disk {
        push(&drive("vdb", work)?.each_ref().map(String::as_str));
    }
    if let Some(modules) = &config.modules_disk {
        push(&drive("modules", modules)?.each_ref().map(String::as_str));
    }
    if let Some(tap) = &config.tap {
        push(&[
            "-netdev",
            &format!("tap,id=net0,ifname={tap},script=no,downscript=no"),
        ]);
        let mac = config
            .mac
            .as_deref()
            .map(|m| format!(",mac={m}"))
            .unwrap_or_default();
        push(&["-device", &format!("virtio-net-device,netdev=net0{mac}")]);
    }
    // QEMU connects to the sidecar, and again if that connection drops.
    push(&[
        "-device",
        "virtio-serial-device,max_ports=2",
        "-chardev",
        &format!(
            "socket,id=agent,path={},reconnect=1",
            option_value(&paths.port_socket)?
        ),
        "-device",
        &format!("virtserialport,chardev=agent,name={AGENT_PORT_NAME}"),
    ]);
    // `-qmp unix:PATH,...` spelled as a chardev, whose `path=` escapes commas.
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            option_value(&paths.qmp)?
        ),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    push(&["-pidfile", &verbatim(&paths.pidfile)?]);
    Ok(args)
}

/// `-incoming` for a state saved in `path`: QEMU 7.2 has no `file:`
/// migration, so a shell's `cat` feeds it. The path is quoted for that
/// shell; one that a single-quoted word cannot hold is refused.
pub fn incoming_from_file(path: &Path) -> Result<String, VmmError> {
    Ok(format!("exec:cat {}", shell_word(path)?))
}

/// `migrate`'s URI writing the state to `path` (created or truncated).
pub fn outgoing_to_file(path: &Path) -> Result<String, VmmError> {
    Ok(format!("exec:cat > {}", shell_word(path)?))
}

/// `path` as one single-quoted POSIX shell word.
fn shell_word(path: &Path) -> Result<String, VmmError> {
    let text = verbatim(path)?;
    if text.contains(['\'', '\n', '\0']) {
        return Err(VmmError::InvalidConfig(format!(
            "{} cannot be passed to QEMU's migration (it contains a quote or a newline)",
            path.display()
        )));
    }
    Ok(format!("'{text}'"))
}

/// `-drive` and `-device` for one virtio block device named `id`.
fn drive(id: &str, disk: &DiskSpec) -> Result<[String; 4], VmmError> {
    let format = match disk.format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    };
    let read_only = if disk.read_only { ",readonly=on" } else { "" };
    Ok([
        "-drive".into(),
        format!(
            "id={id},file={},format={format},if=none{read_only}",
            option_value(&disk.path)?
        ),
        "-device".into(),
        format!("virtio-blk-device,drive={id}"),
    ])
}

#[cfg(test)]
#[path = "argv_tests.rs"]
pub(crate) mod tests;
