use std::path::Path;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::*;
use crate::firecracker::api::*;
use crate::firecracker::layout::{Layout, tests::config};
use crate::firecracker::{JailerConfig, plan};

fn spec() -> &'static ApiSpec {
    static SPEC: OnceLock<ApiSpec> = OnceLock::new();
    SPEC.get_or_init(|| ApiSpec::reference().expect("the reference API description loads"))
}

fn violation(method: &str, path: &str, body: Value) -> Violation {
    spec()
        .validate(method, path, Some(&body))
        .expect_err("the body should be rejected")
}

/// Every kind of request the client sends, with realistic values.
fn every_request() -> Vec<ApiRequest> {
    let mut requests = vec![
        ApiRequest::GetInstanceInfo,
        ApiRequest::Logger(Logger {
            log_path: "/run/banger/vms/dev/firecracker.log".into(),
            level: LogLevel::Info,
            show_level: true,
            show_log_origin: false,
        }),
        ApiRequest::Metrics(Metrics {
            metrics_path: "/run/banger/vms/dev/firecracker.metrics".into(),
        }),
        ApiRequest::MachineConfig(MachineConfig {
            vcpu_count: 32,
            mem_size_mib: 8192,
            smt: false,
        }),
        ApiRequest::BootSource(BootSource {
            kernel_image_path: "/var/lib/banger/kernels/debian/vmlinux".into(),
            initrd_path: Some("/var/lib/banger/kernels/debian/initrd.img".into()),
            boot_args: plan::boot_args("banger.root=/dev/vda banger.ip=172.16.0.2/24"),
        }),
        ApiRequest::Drive(Drive {
            drive_id: "rootfs".into(),
            path_on_host: "/dev/mapper/banger-dev".into(),
            is_root_device: true,
            is_read_only: false,
        }),
        ApiRequest::Drive(Drive {
            drive_id: "work".into(),
            path_on_host: "/var/lib/banger/vms/dev/work.ext4".into(),
            is_root_device: false,
            is_read_only: true,
        }),
        ApiRequest::NetworkInterface(NetworkInterface {
            iface_id: "eth0".into(),
            host_dev_name: "fctap0".into(),
            guest_mac: Some("06:00:ac:10:00:02".into()),
        }),
        ApiRequest::NetworkInterface(NetworkInterface {
            iface_id: "eth0".into(),
            host_dev_name: "fctap1".into(),
            guest_mac: None,
        }),
        ApiRequest::Vsock(Vsock {
            guest_cid: 3,
            uds_path: "/run/banger/vms/dev/vsock.sock".into(),
        }),
    ];
    for level in [
        LogLevel::Error,
        LogLevel::Warning,
        LogLevel::Debug,
        LogLevel::Trace,
        LogLevel::Off,
    ] {
        requests.push(ApiRequest::Logger(Logger {
            log_path: "/l".into(),
            level,
            show_level: false,
            show_log_origin: true,
        }));
    }
    for action_type in [
        ActionType::InstanceStart,
        ActionType::SendCtrlAltDel,
        ActionType::FlushMetrics,
    ] {
        requests.push(ApiRequest::Action(InstanceAction { action_type }));
    }
    requests
}

#[test]
fn the_reference_description_loads() {
    assert_eq!(spec().version(), "1.17.0-dev");
}

#[test]
fn every_request_the_client_can_send_validates() {
    for request in every_request() {
        if let Err(v) = spec().validate_request(&request) {
            panic!("{}: {v}", request.describe());
        }
    }
}

#[test]
fn launch_configurations_validate_direct_and_jailed() {
    let config = config(Path::new("/run/banger/vms/vm-7"));
    let jail = JailerConfig {
        binary: "/usr/bin/jailer".into(),
        uid: 1000,
        gid: 1000,
        chroot_base: "/srv/jailer".into(),
    };
    let layouts = [
        Layout::direct(&config),
        Layout::jailed(&config, &jail, Path::new("/usr/bin/firecracker")).unwrap(),
    ];
    for layout in layouts {
        let mut requests = plan::configuration(&config, &layout).unwrap();
        requests.push(plan::start());
        requests.push(plan::ctrl_alt_del());
        for request in requests {
            spec()
                .validate_request(&request)
                .unwrap_or_else(|v| panic!("{v}"));
        }
    }
}

/// Snapshots: the save (pause, full snapshot), the resume, and a restore's
/// load, drive changes and resume, every request validated.
#[test]
fn snapshot_save_and_restore_requests_validate() {
    let config = config(Path::new("/run/banger/vms/vm-8"));
    let layout = Layout::direct(&config);
    let dir = Path::new("/var/lib/banger/snapshots/base");
    let mut requests = plan::save(dir).unwrap();
    requests.push(plan::pause_or_resume(
        crate::firecracker::api::RunState::Resumed,
    ));
    let restore = plan::restore(&config, &layout, dir).unwrap();
    // Logging first; then the load, paused, with this VM's tap and socket.
    let load = restore
        .iter()
        .find_map(|r| match r {
            ApiRequest::SnapshotLoad(load) => Some(load.clone()),
            _ => None,
        })
        .expect("a load");
    assert!(!load.resume_vm);
    assert_eq!(
        load.mem_backend.backend_path,
        dir.join("memory.fc").display().to_string()
    );
    assert_eq!(
        load.vsock_override.uds_path,
        layout.vsock.vmm_str().unwrap()
    );
    assert_eq!(
        load.network_overrides
            .iter()
            .map(|o| o.host_dev_name.as_str())
            .collect::<Vec<_>>(),
        config.tap.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let patched: Vec<&str> = restore
        .iter()
        .filter_map(|r| match r {
            ApiRequest::PatchDrive(d) => Some(d.drive_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(patched[0], "rootfs");
    assert!(matches!(restore.last(), Some(ApiRequest::PatchVm(_))));
    for request in requests.iter().chain(&restore) {
        spec()
            .validate_request(request)
            .unwrap_or_else(|v| panic!("{}: {v}", request.describe()));
    }
}

#[test]
fn wrong_type_names_the_field() {
    let v = violation(
        "PUT",
        "/drives/rootfs",
        json!({"drive_id": "rootfs", "path_on_host": "/r", "is_root_device": "yes", "is_read_only": false}),
    );
    assert_eq!(v.field(), Some("is_root_device"));
    assert!(
        matches!(&v, Violation::Field { problem: Problem::WrongType { expected, found }, .. }
            if expected == "boolean" && found == "string"),
        "{v:?}"
    );
    assert_eq!(
        v.to_string(),
        "PUT /drives/rootfs: field `is_root_device` expected boolean, found string"
    );
    // An integer field refuses a fraction and a null.
    let v = violation(
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 1, "mem_size_mib": 1.5}),
    );
    assert_eq!(v.field(), Some("mem_size_mib"));
    let v = violation(
        "PUT",
        "/boot-source",
        json!({"kernel_image_path": "/k", "initrd_path": null}),
    );
    assert_eq!(v.field(), Some("initrd_path"));
}

#[test]
fn missing_required_field_is_named() {
    let v = violation(
        "PUT",
        "/drives/rootfs",
        json!({"drive_id": "rootfs", "path_on_host": "/r"}),
    );
    assert!(
        matches!(&v, Violation::Field { field, problem: Problem::MissingRequired, .. } if field == "is_root_device"),
        "{v:?}"
    );
    let v = violation("PUT", "/vsock", json!({"uds_path": "/v"}));
    assert_eq!(v.field(), Some("guest_cid"));
}

#[test]
fn unknown_fields_are_rejected_like_firecracker_does() {
    let v = violation(
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 2, "mem_size_mib": 512, "vcpus": 2}),
    );
    assert!(
        matches!(&v, Violation::Field { field, problem: Problem::Unknown, .. } if field == "vcpus"),
        "{v:?}"
    );
    // Nested objects too, with the path to the field.
    let v = violation(
        "PUT",
        "/drives/work",
        json!({"drive_id": "work", "path_on_host": "/w", "is_root_device": false,
               "rate_limiter": {"bandwidth": {"size": 1, "refill_time": 1, "burst": 3}}}),
    );
    assert_eq!(v.field(), Some("rate_limiter.bandwidth.burst"));
}

#[test]
fn bad_enum_value_is_rejected_with_the_allowed_ones() {
    let v = violation("PUT", "/actions", json!({"action_type": "Reboot"}));
    match &v {
        Violation::Field {
            field,
            problem: Problem::NotInEnum { allowed, found },
            ..
        } => {
            assert_eq!(field, "action_type");
            assert_eq!(found, "Reboot");
            assert!(
                allowed.contains(&"SendCtrlAltDel".to_owned()),
                "{allowed:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // `Off` is a string in the description, not YAML 1.1's boolean false.
    let v = violation("PUT", "/logger", json!({"level": "Loud"}));
    assert!(v.to_string().contains("Off"), "{v}");
}

#[test]
fn bounds_are_enforced() {
    let v = violation("PUT", "/vsock", json!({"guest_cid": 2, "uds_path": "/v"}));
    assert!(
        matches!(&v, Violation::Field { field, problem: Problem::BelowMinimum { minimum }, .. }
            if field == "guest_cid" && *minimum == 3.0),
        "{v:?}"
    );
    let v = violation(
        "PUT",
        "/machine-config",
        json!({"vcpu_count": 33, "mem_size_mib": 512}),
    );
    assert!(
        matches!(
            &v,
            Violation::Field {
                problem: Problem::AboveMaximum { .. },
                ..
            }
        ),
        "{v:?}"
    );
    let v = violation(
        "PUT",
        "/drives/work",
        json!({"drive_id": "work", "is_root_device": false,
               "rate_limiter": {"ops": {"size": -1, "refill_time": 100}}}),
    );
    assert_eq!(v.field(), Some("rate_limiter.ops.size"));
}

#[test]
fn additional_properties_schema_checks_extra_values() {
    spec()
        .validate(
            "PUT",
            "/metrics",
            Some(&json!({"metrics_path": "/m", "properties": {"vm": "dev"}})),
        )
        .unwrap();
    let v = violation(
        "PUT",
        "/metrics",
        json!({"metrics_path": "/m", "properties": {"vm": 7}}),
    );
    assert_eq!(v.field(), Some("properties.vm"));
}

#[test]
fn paths_methods_and_bodies_must_match_an_operation() {
    let err = spec()
        .validate("PUT", "/nope", Some(&json!({})))
        .unwrap_err();
    assert!(matches!(err, Violation::UnknownPath { .. }), "{err:?}");
    let err = spec()
        .validate("DELETE", "/drives/rootfs", None)
        .unwrap_err();
    assert!(
        matches!(&err, Violation::UnknownMethod { template, .. } if template == "/drives/{drive_id}"),
        "{err:?}"
    );
    let err = spec()
        .validate("PUT", "/drives/", Some(&json!({})))
        .unwrap_err();
    assert!(
        matches!(err, Violation::UnknownPath { .. }),
        "empty id: {err:?}"
    );
    let err = spec().validate("PUT", "/actions", None).unwrap_err();
    assert!(matches!(err, Violation::MissingBody { .. }), "{err:?}");
    let err = spec().validate("GET", "/", Some(&json!({}))).unwrap_err();
    assert!(matches!(err, Violation::UnexpectedBody { .. }), "{err:?}");
    // The machine-config body parameter is not marked required.
    spec().validate("PUT", "/machine-config", None).unwrap();
    // A literal path beats a template of the same length.
    spec().validate("GET", "/balloon/statistics", None).unwrap();
    let err = spec()
        .validate("PUT", "/body", Some(&json!([1])))
        .unwrap_err();
    assert!(matches!(err, Violation::UnknownPath { .. }), "{err:?}");
}

#[test]
fn a_body_of_the_wrong_shape_is_named_as_the_body() {
    let v = violation("PUT", "/actions", json!(["InstanceStart"]));
    assert_eq!(v.field(), Some("(body)"));
}

#[test]
fn definitions_validate_answers() {
    let info = json!({"id": "vm-1", "state": "Not started", "vmm_version": "1.17.0", "app_name": "Firecracker"});
    spec().validate_definition("InstanceInfo", &info).unwrap();
    let bad = json!({"id": "vm-1", "state": "Booting", "vmm_version": "1.17.0", "app_name": "Firecracker"});
    let v = spec()
        .validate_definition("InstanceInfo", &bad)
        .unwrap_err();
    assert_eq!(v.field(), Some("state"));
}

#[test]
fn broken_descriptions_are_schema_errors() {
    let spec = ApiSpec::from_yaml(
        "paths:\n  /a:\n    put:\n      parameters:\n        - in: body\n          schema:\n            $ref: '#/definitions/Missing'\ndefinitions:\n  Loop:\n    $ref: '#/definitions/Loop'\n",
    )
    .unwrap();
    let err = spec.validate("PUT", "/a", Some(&json!({}))).unwrap_err();
    assert!(
        matches!(
            err,
            Violation::Schema {
                error: SchemaError::Reference(_),
                ..
            }
        ),
        "{err:?}"
    );
    let err = spec.validate_definition("Loop", &json!({})).unwrap_err();
    assert!(err.to_string().contains("cyclic"), "{err}");
    assert!(matches!(
        ApiSpec::from_yaml("paths: {}\n"),
        Err(SchemaError::Malformed(_))
    ));
    assert!(matches!(
        ApiSpec::from_yaml("a: [\n"),
        Err(SchemaError::Yaml(_))
    ));
}
