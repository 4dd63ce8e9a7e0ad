//! The stand-in's VM: what a request does to it and what Firecracker would
//! answer. Requests are validated against the API description first (a 400
//! with the violation, as Firecracker's own deserializer would refuse them),
//! then against the VM's state (pre-boot only, start needs a kernel, ...),
//! and files Firecracker opens on the spot (logs, kernel, drives) must exist.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};

use crate::firecracker::api::InstanceInfo;
use crate::firecracker::schema::ApiSpec;

/// What the connection handler does with an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    /// `SendCtrlAltDel` was accepted: the process exits after answering.
    pub exit: bool,
    /// `PUT /vsock` was accepted: serve the hybrid vsock at this path.
    pub bind_vsock: Option<PathBuf>,
    /// `InstanceStart` was accepted: the "guest" is up.
    pub guest_started: bool,
}

impl Reply {
    fn no_content() -> Reply {
        Reply {
            status: 204,
            body: None,
            exit: false,
            bind_vsock: None,
            guest_started: false,
        }
    }

    fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body: Some(body),
            ..Reply::no_content()
        }
    }

    pub fn fault(message: impl Into<String>) -> Reply {
        Reply {
            status: 400,
            body: Some(json!({"fault_message": message.into()})),
            ..Reply::no_content()
        }
    }

    pub fn fault_message(&self) -> Option<&str> {
        self.body.as_ref()?.get("fault_message")?.as_str()
    }
}

pub struct Machine {
    pub id: String,
    pub vmm_version: String,
    /// `FC_STANDIN_FAIL_ON`: refuse requests whose path (without the leading
    /// `/`) is this or starts with it and a `/`.
    pub fail_on: Option<String>,
    pub started: Option<Instant>,
    /// The guest's host name, once an agent `identity` call set it.
    pub hostname: Option<String>,
    /// `boot_args` of `PUT /boot-source`.
    pub boot_args: String,
    kernel: bool,
}

impl Machine {
    pub fn new(id: String, vmm_version: String, fail_on: Option<String>) -> Machine {
        Machine {
            id,
            vmm_version,
            fail_on,
            started: None,
            hostname: None,
            boot_args: String::new(),
            kernel: false,
        }
    }

    pub fn info(&self) -> InstanceInfo {
        InstanceInfo {
            id: self.id.clone(),
            state: if self.started.is_some() {
                "Running"
            } else {
                "Not started"
            }
            .into(),
            vmm_version: self.vmm_version.clone(),
            app_name: "Firecracker".into(),
        }
    }

    pub fn handle(&mut self, spec: &ApiSpec, method: &str, path: &str, raw_body: &[u8]) -> Reply {
        let body: Option<Value> = if raw_body.is_empty() {
            None
        } else {
            match serde_json::from_slice(raw_body) {
                Ok(value) => Some(value),
                Err(e) => return Reply::fault(format!("Invalid JSON body: {e}")),
            }
        };
        if let Err(violation) = spec.validate(method, path, body.as_ref()) {
            return Reply::fault(violation.to_string());
        }
        if let Some(prefix) = &self.fail_on {
            let p = path.trim_start_matches('/');
            if p == prefix || p.starts_with(&format!("{prefix}/")) {
                return Reply::fault(format!(
                    "fc-standin refuses {method} {path} (FC_STANDIN_FAIL_ON={prefix})"
                ));
            }
        }
        let body = body.unwrap_or(Value::Null);
        let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
        let pre_boot_only =
            || Reply::fault("The requested operation is not supported after starting the microVM.");
        match (method, path) {
            ("GET", "/") => Reply::ok(serde_json::to_value(self.info()).unwrap_or_default()),
            ("GET", "/version") => Reply::ok(json!({"firecracker_version": self.vmm_version})),
            ("PUT", "/actions") => self.action(field("action_type")),
            ("PUT", _) if self.started.is_some() => pre_boot_only(),
            ("PUT", "/logger") => opens(field("log_path"), "the log file"),
            ("PUT", "/metrics") => opens(field("metrics_path"), "the metrics file"),
            ("PUT", "/machine-config") => Reply::no_content(),
            ("PUT", "/boot-source") => {
                let kernel = opens(field("kernel_image_path"), "the kernel file");
                if kernel.status != 204 {
                    return kernel;
                }
                if let Some(initrd) = body.get("initrd_path").and_then(Value::as_str) {
                    let initrd = opens(initrd, "the initrd file");
                    if initrd.status != 204 {
                        return initrd;
                    }
                }
                self.kernel = true;
                self.boot_args = field("boot_args").to_owned();
                Reply::no_content()
            }
            ("PUT", p) if p.starts_with("/drives/") => {
                if field("drive_id") != &p["/drives/".len()..] {
                    return Reply::fault(
                        "The id from the path does not match the id from the body!",
                    );
                }
                opens(field("path_on_host"), "the block device backing file")
            }
            ("PUT", p) if p.starts_with("/network-interfaces/") => {
                if field("iface_id") != &p["/network-interfaces/".len()..] {
                    return Reply::fault(
                        "The id from the path does not match the id from the body!",
                    );
                }
                Reply::no_content()
            }
            ("PUT", "/vsock") => {
                let uds = PathBuf::from(field("uds_path"));
                if uds.exists() {
                    return Reply::fault(format!(
                        "Cannot create vsock device: {}: Address in use",
                        uds.display()
                    ));
                }
                Reply {
                    bind_vsock: Some(uds),
                    ..Reply::no_content()
                }
            }
            _ => Reply::fault(format!("fc-standin does not implement {method} {path}")),
        }
    }

    fn action(&mut self, action_type: &str) -> Reply {
        match (action_type, self.started) {
            ("InstanceStart", Some(_)) => {
                Reply::fault("The requested operation is not supported after starting the microVM.")
            }
            ("InstanceStart", None) if !self.kernel => {
                Reply::fault("Cannot start microvm without kernel configuration.")
            }
            ("InstanceStart", None) => {
                self.started = Some(Instant::now());
                Reply {
                    guest_started: true,
                    ..Reply::no_content()
                }
            }
            (_, None) => Reply::fault(
                "The requested operation is not supported before starting the microVM.",
            ),
            ("SendCtrlAltDel", Some(_)) => Reply {
                exit: true,
                ..Reply::no_content()
            },
            _ => Reply::no_content(),
        }
    }
}

/// Firecracker opens these files when the request arrives (and never
/// creates them), so a missing one is refused then.
fn opens(path: &str, what: &str) -> Reply {
    match std::fs::File::open(path) {
        Ok(_) => Reply::no_content(),
        Err(e) => Reply::fault(format!("Cannot open {what} {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn spec() -> &'static ApiSpec {
        static SPEC: OnceLock<ApiSpec> = OnceLock::new();
        SPEC.get_or_init(|| ApiSpec::reference().unwrap())
    }

    fn put(m: &mut Machine, path: &str, body: Value) -> Reply {
        m.handle(spec(), "PUT", path, &serde_json::to_vec(&body).unwrap())
    }

    fn machine() -> Machine {
        Machine::new("vm-1".into(), "1.17.0".into(), None)
    }

    #[test]
    fn instance_info_is_a_valid_api_answer_before_and_after_start() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"").unwrap();
        let mut m = machine();
        let get = |m: &mut Machine| m.handle(spec(), "GET", "/", b"");
        let before = get(&mut m);
        spec()
            .validate_definition("InstanceInfo", before.body.as_ref().unwrap())
            .unwrap();
        assert_eq!(before.body.unwrap()["state"], "Not started");
        assert_eq!(
            put(&mut m, "/boot-source", json!({"kernel_image_path": kernel})).status,
            204
        );
        assert_eq!(
            put(&mut m, "/actions", json!({"action_type": "InstanceStart"})).status,
            204
        );
        let after = get(&mut m).body.unwrap();
        spec().validate_definition("InstanceInfo", &after).unwrap();
        assert_eq!(after["state"], "Running");
    }

    #[test]
    fn invalid_requests_get_a_fault_naming_the_field() {
        let mut m = machine();
        let reply = put(
            &mut m,
            "/machine-config",
            json!({"vcpu_count": 2, "mem_size_mib": 512, "smt": "no"}),
        );
        assert_eq!(reply.status, 400);
        assert!(
            reply.fault_message().unwrap().contains("`smt`"),
            "{reply:?}"
        );
        let reply = m.handle(spec(), "PUT", "/vsock", b"{not json");
        assert!(
            reply.fault_message().unwrap().contains("Invalid JSON"),
            "{reply:?}"
        );
    }

    #[test]
    fn state_rules_follow_firecracker() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = machine();
        let start = json!({"action_type": "InstanceStart"});
        let reply = put(&mut m, "/actions", start.clone());
        assert!(
            reply.fault_message().unwrap().contains("without kernel"),
            "{reply:?}"
        );
        let reply = put(&mut m, "/actions", json!({"action_type": "SendCtrlAltDel"}));
        assert!(
            reply.fault_message().unwrap().contains("before starting"),
            "{reply:?}"
        );
        let reply = put(
            &mut m,
            "/boot-source",
            json!({"kernel_image_path": dir.path().join("missing")}),
        );
        assert!(
            reply
                .fault_message()
                .unwrap()
                .contains("Cannot open the kernel"),
            "{reply:?}"
        );

        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"").unwrap();
        assert_eq!(
            put(&mut m, "/boot-source", json!({"kernel_image_path": kernel})).status,
            204
        );
        assert_eq!(put(&mut m, "/actions", start.clone()).status, 204);
        assert_eq!(put(&mut m, "/actions", start).status, 400, "started twice");
        let reply = put(
            &mut m,
            "/machine-config",
            json!({"vcpu_count": 1, "mem_size_mib": 128}),
        );
        assert!(
            reply.fault_message().unwrap().contains("after starting"),
            "{reply:?}"
        );
        let reply = put(&mut m, "/actions", json!({"action_type": "SendCtrlAltDel"}));
        assert!(reply.exit && reply.status == 204, "{reply:?}");
    }

    #[test]
    fn drive_ids_must_match_and_vsock_must_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("root.ext4");
        std::fs::write(&disk, b"").unwrap();
        let mut m = machine();
        let drive = |id: &str| json!({"drive_id": id, "path_on_host": disk, "is_root_device": true, "is_read_only": false});
        assert_eq!(put(&mut m, "/drives/rootfs", drive("rootfs")).status, 204);
        assert_eq!(put(&mut m, "/drives/rootfs", drive("other")).status, 400);
        let uds = dir.path().join("vsock.sock");
        let reply = put(&mut m, "/vsock", json!({"guest_cid": 3, "uds_path": uds}));
        assert_eq!(reply.bind_vsock.as_deref(), Some(uds.as_path()));
        std::fs::write(&uds, b"").unwrap();
        let reply = put(&mut m, "/vsock", json!({"guest_cid": 3, "uds_path": uds}));
        assert!(
            reply.fault_message().unwrap().contains("Address in use"),
            "{reply:?}"
        );
    }

    #[test]
    fn fail_on_refuses_only_the_named_valid_requests() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("root.ext4");
        std::fs::write(&disk, b"").unwrap();
        let mut m = Machine::new("vm-1".into(), "1.17.0".into(), Some("drives".into()));
        let reply = put(
            &mut m,
            "/drives/rootfs",
            json!({"drive_id": "rootfs", "path_on_host": disk, "is_root_device": true}),
        );
        assert!(
            reply
                .fault_message()
                .unwrap()
                .contains("FC_STANDIN_FAIL_ON=drives"),
            "{reply:?}"
        );
        assert_eq!(
            put(
                &mut m,
                "/machine-config",
                json!({"vcpu_count": 1, "mem_size_mib": 128})
            )
            .status,
            204
        );
    }
}
