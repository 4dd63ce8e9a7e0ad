//! `vm snapshot`, `vm restore` and `snapshot list|show|delete`.

use banger_api::protocol::{
    NameParams, NoParams, Request, SnapshotInfo, Vm, VmForkParams, VmRestoreParams,
    VmSnapshotParams,
};

use super::{client, print, print_json, show};
use crate::args::{JsonFlag, SnapshotCommand};
use crate::error::CliError;
use crate::render;

pub fn take(vm: String, name: Option<String>, json: JsonFlag) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let s: SnapshotInfo = client()?.call(Request::VmSnapshot(VmSnapshotParams { vm, name }))?;
    if json.json {
        return print_json(&s);
    }
    eprintln!(
        "snapshot {} of {} taken in {:.1} s",
        s.name,
        s.source_vm,
        started.elapsed().as_secs_f64()
    );
    print(&detail(&s))
}

pub fn restore(snapshot: String, name: Option<String>, json: JsonFlag) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let vm: Vm = client()?.call(Request::VmRestore(VmRestoreParams {
        snapshot: snapshot.clone(),
        name,
    }))?;
    if json.json {
        return print_json(&vm);
    }
    eprintln!(
        "restored {} from snapshot {snapshot} in {:.1} s",
        vm.name,
        started.elapsed().as_secs_f64()
    );
    print(&render::vm_detail(&vm))
}

pub fn fork(
    vm: String,
    count: u32,
    name_prefix: Option<String>,
    json: JsonFlag,
) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    let children: Vec<Vm> = client()?.call(Request::VmFork(VmForkParams {
        vm: vm.clone(),
        count,
        name_prefix,
    }))?;
    if json.json {
        return print_json(&children);
    }
    eprintln!(
        "forked {vm} into {} in {:.1} s",
        children.len(),
        started.elapsed().as_secs_f64()
    );
    let lines: String = children
        .iter()
        .map(|c| {
            let ip = c.runtime.ip.map(|ip| ip.to_string()).unwrap_or_default();
            format!("{}\t{ip}\t{}.vm\n", c.name, c.name)
        })
        .collect();
    print(&lines)
}

pub fn command(cmd: SnapshotCommand) -> Result<(), CliError> {
    match cmd {
        SnapshotCommand::List(json) => {
            let all: Vec<SnapshotInfo> = client()?.call(Request::SnapshotList(NoParams {}))?;
            if json.json {
                return print_json(&all);
            }
            if all.is_empty() {
                return print("No snapshots. Take one with `banger vm snapshot VM --name NAME`.\n");
            }
            let rows: Vec<Vec<String>> = all.iter().map(row).collect();
            print(&render::table(&COLUMNS, &rows))
        }
        SnapshotCommand::Show { name, json } => {
            let s: SnapshotInfo = client()?.call(Request::SnapshotShow(NameParams { name }))?;
            show(&s, json, detail)
        }
        SnapshotCommand::Delete { name } => {
            client()?.call::<serde_json::Value>(Request::SnapshotDelete(NameParams {
                name: name.clone(),
            }))?;
            print(&format!("deleted snapshot {name}\n"))
        }
    }
}

const COLUMNS: [&str; 7] = [
    "NAME", "OF VM", "IMAGE", "SIZE", "ON DISK", "CREATED", "USED BY",
];

fn row(s: &SnapshotInfo) -> Vec<String> {
    vec![
        s.name.clone(),
        s.source_vm.clone(),
        s.image.clone(),
        format!("{} vCPU, {} MiB", s.spec.vcpu, s.spec.memory_mib),
        render::human_bytes(s.disk_bytes),
        s.created_at.clone(),
        if s.used_by.is_empty() {
            "-".into()
        } else {
            s.used_by.join(",")
        },
    ]
}

fn detail(s: &SnapshotInfo) -> String {
    let used_by = if s.used_by.is_empty() {
        "-".to_owned()
    } else {
        s.used_by.join(", ")
    };
    format!(
        "name:      {}\nof VM:     {}\nbackend:   {}\nimage:     {}\nkernel:    {}\n\
         spec:      {} vCPU, {} MiB, disk {}\ncreated:   {}\non disk:   {}\npath:      {}\n\
         used by:   {used_by}\n",
        s.name,
        s.source_vm,
        s.backend,
        s.image,
        s.kernel,
        s.spec.vcpu,
        s.spec.memory_mib,
        s.spec.disk_size,
        s.created_at,
        render::human_bytes(s.disk_bytes),
        s.path,
    )
}
