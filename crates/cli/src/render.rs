//! Human output: aligned tables and key/value blocks. JSON output is the
//! protocol's own types serialised, so it is not here.

use banger_api::protocol::{ImageInfo, KernelInfo, Operation, Vm};

/// Left-aligned columns separated by two spaces; the last column unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

pub fn key_values(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
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

/// `1536 MiB`, `1.5 GiB`: sizes as people read them.
pub fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = n as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
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
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn times_are_shortened() {
        assert_eq!(short_time("2026-11-24T04:30:59Z"), "2026-11-24 04:30");
        assert_eq!(short_time("bad"), "bad");
    }
}
