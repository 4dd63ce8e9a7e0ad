//! `vm.logs` and `vm.stats`: read-only looks at a VM. Neither takes the
//! VM's lock, so they answer while a long start or stop is under way.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use banger_api::model::VmState;
use banger_api::protocol::{
    DiskUsage, GuestUsage, MAX_LOG_CHUNK, VmLogs, VmLogsParams, VmRef, VmStats, VmmUsage,
};
use banger_image::cow::CowStrategy;
use banger_store::VmRecord;

use super::handles::read_handles;
use super::logread::read_chunk;
use super::record::{WORK_DISK_FILE, find, root_disk_of};
use crate::blocking::run;
use crate::error::DaemonError;
use crate::state::Daemon;

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, which the kernel
/// ABI fixes at 100 per second on x86_64, the architecture banger runs on.
const USER_HZ: f64 = 100.0;

/// The VMM's log and the serial console, as recorded in `handles.json`
/// while the VM runs; afterwards (the files stay in the VM directory) by
/// the names the VMM drivers give them.
fn log_paths(daemon: &Daemon, vm: &VmRecord) -> (PathBuf, PathBuf) {
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    if let Some(h) = read_handles(&vm_dir) {
        return (h.handle.vmm_log, h.handle.console_log);
    }
    let qemu = banger_vmm::qemu::RunPaths::new(&vm_dir);
    let firecracker = vm_dir.join(banger_vmm::firecracker::VMM_LOG);
    // The backend that ran last wrote its log last.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let vmm = match (modified(&qemu.qemu_log), modified(&firecracker)) {
        (Some(q), Some(f)) if f > q => firecracker,
        (None, Some(_)) => firecracker,
        _ => qemu.qemu_log,
    };
    (vmm, qemu.console_log)
}

pub async fn logs(daemon: &Daemon, p: VmLogsParams) -> Result<VmLogs, DaemonError> {
    let vm = find(daemon, &p.vm).await?;
    let (vmm_path, console_path) = log_paths(daemon, &vm);
    let (vmm, console) = run(move || {
        let read = |path: &Path, offset| {
            read_chunk(path, offset, MAX_LOG_CHUNK).map_err(|source| {
                DaemonError::from(banger_image::DiskError::Io {
                    action: "read the log",
                    path: path.to_owned(),
                    source,
                })
            })
        };
        Ok::<_, DaemonError>((
            read(&vmm_path, p.vmm_offset)?,
            read(&console_path, p.console_offset)?,
        ))
    })
    .await??;
    Ok(VmLogs {
        name: vm.name,
        vmm,
        console,
    })
}

pub async fn stats(daemon: &Daemon, r: VmRef) -> Result<VmStats, DaemonError> {
    let vm = find(daemon, &r.vm).await?;
    let vm_dir = daemon.paths.vm_dir(&vm.id);
    let mut notes = Vec::new();
    let mut disk_files = Vec::new();
    match root_disk_of(&vm) {
        // A device-mapper snapshot's own data is its exception store.
        Ok(Some(root)) => disk_files.push((
            "root",
            match (root.strategy, root.cow_file) {
                (CowStrategy::DmSnapshot, Some(cow)) => cow,
                _ => root.path,
            },
        )),
        Ok(None) => notes.push("no root disk on record".to_owned()),
        Err(e) => notes.push(banger_api::error_chain(&e)),
    }
    disk_files.push(("work", vm_dir.join(WORK_DISK_FILE)));
    let running = vm.state == VmState::Running;
    let handles = if running { read_handles(&vm_dir) } else { None };
    if running && handles.is_none() {
        notes.push("no handles.json: the VMM's pid is not known".to_owned());
    }
    let agent = daemon.vms.guest();
    let (vm_id, uds) = (
        vm.id.clone(),
        handles.as_ref().map(|h| h.handle.vsock_uds.clone()),
    );
    let pid = handles.as_ref().map(|h| h.handle.pid);
    let (disks, vmm, guest, more_notes) = run(move || {
        let mut notes = Vec::new();
        let disks = disk_files
            .into_iter()
            .filter_map(|(role, path)| match disk_usage(role, &path) {
                Ok(d) => Some(d),
                Err(e) => {
                    notes.push(format!("{role} disk {}: {e}", path.display()));
                    None
                }
            })
            .collect::<Vec<_>>();
        let vmm = pid.and_then(|pid| match vmm_usage(pid, &vm_id) {
            Ok(u) => Some(u),
            Err(why) => {
                notes.push(format!("VMM process {pid}: {why}"));
                None
            }
        });
        let guest = uds.and_then(|uds| match agent.health(&uds) {
            Ok(h) => Some(GuestUsage {
                uptime_s: h.uptime_s,
                agent: h.agent,
            }),
            Err(e) => {
                // The agent's own error text is the guest's words.
                notes.push(banger_api::text::clean_guest_text(&format!(
                    "the guest agent did not answer: {e}"
                )));
                None
            }
        });
        (disks, vmm, guest, notes)
    })
    .await?;
    notes.extend(more_notes);
    Ok(VmStats {
        id: vm.id,
        name: vm.name,
        state: vm.state,
        spec: vm.spec,
        vmm,
        guest,
        disks,
        notes,
    })
}

fn disk_usage(role: &str, path: &Path) -> std::io::Result<DiskUsage> {
    let meta = std::fs::metadata(path)?;
    Ok(DiskUsage {
        role: role.to_owned(),
        path: path.display().to_string(),
        apparent_bytes: meta.len(),
        // st_blocks counts 512-byte units whatever the filesystem's block size.
        allocated_bytes: meta.blocks() * 512,
    })
}

/// CPU time and resident memory of the VMM. The pid comes from
/// `handles.json`; a process whose argv does not name the VM (the VMM died
/// and the pid was reused) is not reported as the VMM.
fn vmm_usage(pid: u32, vm_id: &str) -> Result<VmmUsage, String> {
    let proc_file = |name: &str| {
        std::fs::read(format!("/proc/{pid}/{name}"))
            .map_err(|e| format!("cannot read /proc/{pid}/{name}: {e}"))
    };
    // Every VMM's argv holds the VM's id (in its run directory or `--id`).
    if !banger_sys::proc::is_ours(pid, vm_id) {
        return Err("it is not running this VM (the VMM exited?)".to_owned());
    }
    let stat = String::from_utf8_lossy(&proc_file("stat")?).into_owned();
    let status = String::from_utf8_lossy(&proc_file("status")?).into_owned();
    Ok(VmmUsage {
        pid,
        cpu_seconds: cpu_ticks(&stat).ok_or("unreadable /proc stat")? as f64 / USER_HZ,
        rss_bytes: rss_kib(&status).ok_or("no VmRSS in /proc status")? * 1024,
    })
}

/// utime + stime from `/proc/<pid>/stat`: fields 14 and 15, counted after
/// the command name, which may itself hold spaces and parentheses.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_past_an_awkward_name() {
        let stat = "4242 (qemu) sys (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 5 0";
        assert_eq!(cpu_ticks(stat), Some(400));
        assert_eq!(cpu_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn rss_comes_from_status() {
        let status = "Name:\tqemu\nVmPeak:\t  999 kB\nVmRSS:\t  123456 kB\nThreads:\t5\n";
        assert_eq!(rss_kib(status), Some(123_456));
        assert_eq!(rss_kib("Name:\tkthread\n"), None);
    }

    #[test]
    fn this_process_measures_and_a_foreign_one_is_refused() {
        let me = std::process::id();
        let own_cmdline = std::fs::read(format!("/proc/{me}/cmdline")).unwrap();
        let arg0 = String::from_utf8_lossy(&own_cmdline)
            .split('\0')
            .next()
            .unwrap()
            .to_owned();
        let usage = vmm_usage(me, &arg0).unwrap();
        assert!(usage.rss_bytes > 0 && usage.cpu_seconds >= 0.0, "{usage:?}");
        let refused = vmm_usage(me, "0123456789abcdef").unwrap_err();
        assert!(refused.contains("not running this VM"), "{refused}");
    }

    #[test]
    fn sparse_disks_allocate_less_than_they_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work.ext4");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(1 << 30).unwrap();
        let d = disk_usage("work", &path).unwrap();
        assert_eq!(d.apparent_bytes, 1 << 30);
        assert!(d.allocated_bytes < d.apparent_bytes, "{d:?}");
    }
}
