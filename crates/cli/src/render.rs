//! Human output: aligned tables and key/value blocks. JSON output is the
//! protocol's own types serialised, so it is not here.
//!
//! Values can come from a guest (a VM's last error quoting its console, an
//! agent's message in a stats note, a port's addresses), so every cell and
//! value goes through `banger_api::text::clean_guest_text` on its way out
//! (SPEC §12): nothing printed here can drive the terminal.

use banger_api::protocol::{ImageInfo, KernelInfo, Operation, Vm, VmPorts, VmStats};
use banger_api::text::clean_guest_text;

/// Left-aligned columns separated by two spaces; the last column unpadded.
/// Cells are cleaned, and a newline or tab in one becomes a space so a row
/// stays one line.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| cell_text(cell)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

pub const VM_COLUMNS: [&str; 10] = [
    "ID",
    "NAME",
    "STATE",
    "IMAGE",
    "IP",
    "VCPU",
    "MEM",
    "DISK",
    "WORKSPACE",
    "CREATED",
];

/// IDs are shown shortened; any unique prefix works as a reference.
const SHORT_ID: usize = 8;

pub fn vm_row(vm: &Vm) -> Vec<String> {
    vec![
        vm.id.chars().take(SHORT_ID).collect(),
        vm.name.to_string(),
        vm.state.to_string(),
        vm.image.clone(),
        vm.runtime
            .ip
            .map_or_else(|| "-".into(), |ip| ip.to_string()),
        vm.spec.vcpu.to_string(),
        format!("{} MiB", vm.spec.memory_mib),
        vm.spec.disk_size.to_string(),
        vm.workspace
            .as_ref()
            .map_or_else(|| "-".into(), |w| w.guest_path.clone()),
        short_time(&vm.created_at),
    ]
}

/// `2026-11-24T04:30:00Z` → `2026-11-24 04:30`.
fn short_time(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(head) => head.replacen('T', " ", 1),
        None => rfc3339.to_owned(),
    }
}

pub fn vm_detail(vm: &Vm) -> String {
    let mut rows = vec![
        ("id", vm.id.clone()),
        ("name", vm.name.to_string()),
        ("state", vm.state.to_string()),
        ("image", vm.image.clone()),
        ("vcpu", vm.spec.vcpu.to_string()),
        ("memory", format!("{} MiB", vm.spec.memory_mib)),
        ("disk", vm.spec.disk_size.to_string()),
        ("nat", if vm.spec.nat { "on" } else { "off" }.into()),
        (
            "ip",
            vm.runtime
                .ip
                .map_or_else(|| "-".into(), |ip| ip.to_string()),
        ),
        ("created", vm.created_at.clone()),
        ("updated", vm.updated_at.clone()),
    ];
    if let Some(disk) = &vm.runtime.root_disk {
        rows.push((
            "root disk",
            format!("{} ({}, {})", disk.path, disk.strategy, disk.format),
        ));
    }
    if let Some(w) = &vm.workspace {
        rows.push((
            "workspace",
            format!(
                "{} (from {} at {})",
                w.guest_path, w.host_path, w.base_commit
            ),
        ));
    }
    if let Some(err) = &vm.last_error {
        rows.push(("last error", err.clone()));
    }
    key_values(&rows)
}

/// `key: value` lines, keys aligned. Values are cleaned; one that spans
/// several lines (a last error quoting the console) keeps its newlines.
pub fn key_values(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| {
            let v = clean_guest_text(v);
            let v = v.trim_end_matches('\n');
            format!("{:<width$} {v}\n", format!("{k}:"))
        })
        .collect()
}

/// A table cell: cleaned, on one line.
fn cell_text(cell: &str) -> String {
    clean_guest_text(cell).replace(['\n', '\t'], " ")
}

pub const KERNEL_COLUMNS: [&str; 5] = ["NAME", "VERSION", "SIZE", "IMPORTED", "SOURCE"];

pub fn kernel_row(k: &KernelInfo) -> Vec<String> {
    vec![
        k.name.clone(),
        k.version.clone(),
        human_bytes(k.size_bytes),
        short_time(&k.imported_at),
        k.source.clone(),
    ]
}

pub fn kernel_detail(k: &KernelInfo) -> String {
    key_values(&[
        ("name", k.name.clone()),
        ("distro", k.distro.clone()),
        ("arch", k.arch.clone()),
        ("version", k.version.clone()),
        ("size", human_bytes(k.size_bytes)),
        ("sha256", k.sha256.clone()),
        ("source", k.source.clone()),
        ("imported", k.imported_at.clone()),
        ("path", k.path.clone()),
    ])
}

pub const IMAGE_COLUMNS: [&str; 6] = ["NAME", "KIND", "KERNEL", "SIZE", "CREATED", "SOURCE"];

pub fn image_row(i: &ImageInfo) -> Vec<String> {
    vec![
        i.name.clone(),
        i.kind.clone(),
        i.kernel_ref.clone().unwrap_or_else(|| "-".into()),
        human_bytes(i.size_bytes),
        short_time(&i.created_at),
        i.source.clone(),
    ]
}

pub fn image_detail(i: &ImageInfo) -> String {
    let mut rows = vec![
        ("name", i.name.clone()),
        ("kind", i.kind.clone()),
        ("distro", i.distro.clone()),
        ("arch", i.arch.clone()),
        ("rootfs", i.rootfs.clone()),
        ("kernel", i.kernel_ref.clone().unwrap_or_else(|| "-".into())),
        ("size", human_bytes(i.size_bytes)),
        ("source", i.source.clone()),
        ("created", i.created_at.clone()),
    ];
    if let Some(hash) = &i.recipe_hash {
        rows.push(("recipe", hash.clone()));
    }
    if let Some(init) = &i.init {
        rows.push(("init", init.clone()));
    }
    key_values(&rows)
}

/// `512 bytes`, `12 KiB`, `1536 MiB`, `1.5 GiB`: sizes as people read them.
pub fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = n as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else if n >= 1 << 20 {
        format!("{mib:.0} MiB")
    } else if n >= 1 << 10 {
        format!("{} KiB", n.div_ceil(1024))
    } else {
        format!("{n} bytes")
    }
}

pub fn operation_row(op: &Operation) -> Vec<String> {
    vec![
        op.id.clone(),
        op.kind.clone(),
        op.target.clone().unwrap_or_else(|| "-".into()),
        op.state.as_str().to_owned(),
        op.stage.clone().unwrap_or_else(|| "-".into()),
        short_time(&op.started_at),
        op.error.clone().unwrap_or_default(),
    ]
}

/// `2 vcpu | 2048 MiB | 8G disk | nat off`, as `vm run` prints a spec.
pub fn spec_line(vm: &Vm) -> String {
    format!(
        "{} vcpu | {} MiB | {} disk | nat {}",
        vm.spec.vcpu,
        vm.spec.memory_mib,
        vm.spec.disk_size,
        if vm.spec.nat { "on" } else { "off" }
    )
}

/// The list `vm prune` shows before it asks.
pub fn prune_question(vms: &[&Vm]) -> String {
    let rows: Vec<Vec<String>> = vms
        .iter()
        .map(|vm| {
            vec![
                vm.name.to_string(),
                vm.state.to_string(),
                vm.id.chars().take(SHORT_ID).collect(),
                short_time(&vm.created_at),
            ]
        })
        .collect();
    let listing = table(&["NAME", "STATE", "ID", "CREATED"], &rows);
    let indented: String = listing.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "These VMs are not running; they will be deleted with their disks:\n{indented}Delete {} VM{}? [y/N] ",
        vms.len(),
        if vms.len() == 1 { "" } else { "s" }
    )
}

pub fn stats(s: &VmStats) -> String {
    let mut rows = vec![
        ("name", s.name.to_string()),
        ("state", s.state.to_string()),
        ("vcpu", s.spec.vcpu.to_string()),
        ("memory", format!("{} MiB", s.spec.memory_mib)),
    ];
    if let Some(v) = &s.vmm {
        rows.push((
            "vmm",
            format!(
                "pid {}, cpu {:.1} s, rss {}",
                v.pid,
                v.cpu_seconds,
                human_bytes(v.rss_bytes)
            ),
        ));
    }
    if let Some(g) = &s.guest {
        rows.push(("uptime", duration(g.uptime_s)));
    }
    for d in &s.disks {
        let key = if d.role == "root" {
            "root disk"
        } else {
            "work disk"
        };
        rows.push((
            key,
            format!(
                "{} used of {} ({})",
                human_bytes(d.allocated_bytes),
                human_bytes(d.apparent_bytes),
                d.path
            ),
        ));
    }
    for note in &s.notes {
        rows.push(("note", note.clone()));
    }
    key_values(&rows)
}

/// `3d 04h 05m`, `2h 03m 04s`, `45s`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s:02}s"),
        (0, _, _) => format!("{h}h {m:02}m {s:02}s"),
        _ => format!("{d}d {h:02}h {m:02}m"),
    }
}

pub const PORT_COLUMNS: [&str; 5] = ["PROTO", "PORT", "ENDPOINT", "LISTENS ON", "HTTP"];

pub fn ports(p: &VmPorts) -> String {
    let mut out = if p.ports.is_empty() {
        format!("{} listens on no port.\n", p.name)
    } else {
        let rows: Vec<Vec<String>> = p
            .ports
            .iter()
            .map(|port| {
                let http = match (&port.http, port.reachable) {
                    (Some(link), _) => link.clone(),
                    (None, true) => "-".into(),
                    (None, false) => "- (loopback only: not reachable from the host)".into(),
                };
                vec![
                    port.proto.as_str().to_owned(),
                    port.port.to_string(),
                    port.endpoint.clone(),
                    port.addrs.join(", "),
                    http,
                ]
            })
            .collect();
        table(&PORT_COLUMNS, &rows)
    };
    for note in &p.notes {
        out.push_str(&format!("note: {}\n", clean_guest_text(note)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let out = table(
            &["A", "LONG"],
            &[
                vec!["wide-cell".into(), "x".into()],
                vec!["b".into(), "".into()],
            ],
        );
        assert_eq!(out, "A          LONG\nwide-cell  x\nb\n");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(3 << 20), "3 MiB");
        assert_eq!(human_bytes(10_000), "10 KiB");
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn times_are_shortened() {
        assert_eq!(short_time("2026-11-24T04:30:59Z"), "2026-11-24 04:30");
        assert_eq!(short_time("bad"), "bad");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(45.7), "45s");
        assert_eq!(duration(125.0), "2m 05s");
        assert_eq!(duration(7384.0), "2h 03m 04s");
        assert_eq!(
            duration(3.0 * 86_400.0 + 4.0 * 3600.0 + 300.0),
            "3d 04h 05m"
        );
    }

    /// What a hostile guest might put in text the daemon passes on.
    const OSC52: &str = "\u{1b}]52;c;cm0gLXJmIH4K\u{7}";

    fn assert_inert(text: &str) {
        assert!(
            !text.chars().any(banger_api::text::is_unsafe_char),
            "{text:?}"
        );
        assert!(!text.contains("52;c;"), "{text:?}");
    }

    fn vm_with_last_error(error: &str) -> Vm {
        serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef",
            "name": "dev",
            "image": "debian-bookworm",
            "state": "error",
            "spec": {"vcpu": 2, "memory_mib": 2048, "disk_size": "8G"},
            "runtime": {},
            "workspace": null,
            "created_at": "2026-11-24T04:30:00Z",
            "updated_at": "2026-11-24T04:31:00Z",
            "last_error": error,
        }))
        .unwrap()
    }

    #[test]
    fn a_root_disk_is_shown_by_path_strategy_and_format() {
        let mut vm = vm_with_last_error("");
        vm.runtime = serde_json::from_value(serde_json::json!({
            "ip": "172.16.0.2",
            "root_disk": {"strategy": "qcow2-overlay", "format": "qcow2", "path": "/v/root.qcow2"},
        }))
        .unwrap();
        let shown = vm_detail(&vm);
        assert!(
            shown.contains("root disk:  /v/root.qcow2 (qcow2-overlay, qcow2)"),
            "{shown}"
        );
        assert!(shown.contains("172.16.0.2"), "{shown}");
    }

    #[test]
    fn an_osc_52_in_a_last_error_never_reaches_the_output() {
        let vm = vm_with_last_error(&format!(
            "agent did not answer; console tail:\nlogin: {OSC52}\u{1b}[2J\u{9b}2Jok\r\n"
        ));
        let shown = vm_detail(&vm);
        assert_inert(&shown);
        assert!(
            shown.contains("last error: agent did not answer; console tail:\nlogin: ok\n"),
            "{shown}"
        );
        let listed = table(&VM_COLUMNS, &[vm_row(&vm)]);
        assert_inert(&listed);
        // Table cells stay on one line.
        let row = vec!["a\nb".to_owned(), format!("c{OSC52}d")];
        assert_eq!(table(&["X", "Y"], &[row]), "X    Y\na b  cd\n");
    }

    #[test]
    fn stats_notes_and_ports_are_cleaned() {
        let stats: VmStats = serde_json::from_value(serde_json::json!({
            "id": "0123456789abcdef",
            "name": "dev",
            "state": "running",
            "spec": {"vcpu": 2, "memory_mib": 2048, "disk_size": "8G"},
            "vmm": null,
            "guest": null,
            "disks": [],
            "notes": [format!("agent error (failed): {OSC52}\u{202e}gnp.exe")],
        }))
        .unwrap();
        let text = super::stats(&stats);
        assert_inert(&text);
        assert!(
            text.contains("note:   agent error (failed): gnp.exe"),
            "{text}"
        );

        let p = VmPorts {
            name: banger_api::model::VmName::new("dev").unwrap(),
            ip: None,
            ports: vec![],
            notes: vec![format!("{OSC52}probe failed")],
        };
        let text = ports(&p);
        assert_inert(&text);
        assert!(text.ends_with("note: probe failed\n"), "{text}");
    }

    #[test]
    fn ports_show_endpoints_links_and_loopback() {
        use banger_api::protocol::{PortProto, VmPort};
        let port = |n: u16, addrs: &[&str], reachable, http: Option<&str>| VmPort {
            proto: PortProto::Tcp,
            port: n,
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            endpoint: format!("dev.vm:{n}"),
            reachable,
            http: http.map(str::to_owned),
        };
        let p = VmPorts {
            name: banger_api::model::VmName::new("dev").unwrap(),
            ip: None,
            ports: vec![
                port(22, &["0.0.0.0", "::"], true, None),
                port(3000, &["0.0.0.0"], true, Some("http://dev.vm:3000/")),
                port(5432, &["127.0.0.1"], false, None),
            ],
            notes: vec![],
        };
        let text = ports(&p);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].split_whitespace().next(), Some("PROTO"));
        assert!(
            lines[1].contains("dev.vm:22") && lines[1].contains("0.0.0.0, ::"),
            "{text}"
        );
        assert!(lines[2].ends_with("http://dev.vm:3000/"), "{text}");
        assert!(lines[3].contains("loopback only"), "{text}");
        let empty = VmPorts { ports: vec![], ..p };
        assert_eq!(ports(&empty), "dev listens on no port.\n");
    }
}
