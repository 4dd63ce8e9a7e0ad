//! The `service` mode: answer the host on vsock port [`AGENT_PORT`], one
//! request per connection (see `PROTOCOL.md`).
//!
//! The server loop is generic over [`Listener`], so tests run the very same
//! code over a Unix socket on the host.

pub mod boot_barrier;
mod capture;
mod config;
pub mod conn;
mod dispatch;
pub mod exec;
pub mod exec_input;
mod exec_spec;
pub mod exec_stream;
mod hangup;
mod health;
pub mod identity;
mod invalid_identity;
pub mod listener;
pub mod power;
mod process;
pub mod refresh;
pub mod serial;
mod server;
#[cfg(test)]
mod test_support;

pub use config::ServiceConfig;
pub use listener::Listener;
pub use power::{PowerControl, PowerError};
pub use server::serve;

use std::io;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::mode::ServiceArgs;
use crate::protocol::AGENT_PORT;

/// Why the service could not start.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("cannot listen on vsock port {port}: {source}")]
    BindVsock { port: u32, source: io::Error },
    #[error("cannot listen on {}: {source}", path.display())]
    BindUnix { path: PathBuf, source: io::Error },
    #[error("banger.channel=serial, but no virtio-serial port named {name} appeared in {dir}")]
    NoSerialPort {
        name: &'static str,
        dir: &'static str,
    },
    #[error("cannot serve the serial channel on {}: {source}", path.display())]
    Serial { path: PathBuf, source: io::Error },
}

/// How long the serial port gets to appear after boot.
const SERIAL_PORT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the kernel command line puts the agent on the serial channel.
fn serial_channel() -> bool {
    std::fs::read_to_string(crate::cmdline::PROC_CMDLINE).is_ok_and(|text| {
        crate::cmdline::Cmdline::parse(&text).get("banger.channel") == Some("serial")
    })
}

/// Runs the service as `banger-agent service` asked; returns only when the
/// listening socket cannot be created.
/// In a guest booted through another initramfs than banger's, nothing has
/// mounted the work disk yet: identity writes under /root, so it must be
/// there before the host can connect.
fn ensure_workdisk() {
    let Ok(text) = std::fs::read_to_string(crate::cmdline::PROC_CMDLINE) else {
        return;
    };
    let cmdline = crate::cmdline::Cmdline::parse(&text);
    if let Ok(config) = crate::boot_config::BootConfig::from_cmdline(&cmdline) {
        if let Some(device) = &config.workdisk {
            crate::workdisk::mount(device, std::path::Path::new("/"));
        }
    }
}

pub fn run(args: &ServiceArgs) -> Result<std::convert::Infallible, ServiceError> {
    let mut config = ServiceConfig::guest(power::from_choice(args.power));
    if args.unix.is_none() {
        config.boot_barrier = boot_barrier::BootBarrier::detect(std::path::Path::new("/"));
    }
    let config = Arc::new(config);
    if let Some(path) = &args.serial_socket {
        let listener = serial::listen_socket(path).map_err(|source| ServiceError::Serial {
            path: path.clone(),
            source,
        })?;
        serve(listener, config)
    }
    if args.unix.is_none() && serial_channel() {
        ensure_workdisk();
        let dir = std::path::Path::new(serial::PORTS_DIR);
        let device = serial::find_port(dir, serial::PORT_NAME, SERIAL_PORT_WAIT).ok_or(
            ServiceError::NoSerialPort {
                name: serial::PORT_NAME,
                dir: serial::PORTS_DIR,
            },
        )?;
        let listener = serial::listen_port(&device).map_err(|source| ServiceError::Serial {
            path: device.clone(),
            source,
        })?;
        serve(listener, config)
    }
    match &args.unix {
        Some(path) => {
            // A leftover socket file from an earlier run would make bind fail.
            let _ = std::fs::remove_file(path);
            let listener = UnixListener::bind(path).map_err(|source| ServiceError::BindUnix {
                path: path.clone(),
                source,
            })?;
            serve(listener, config)
        }
        None => {
            ensure_workdisk();
            let listener =
                vsock::VsockListener::bind_with_cid_port(vsock::VMADDR_CID_ANY, AGENT_PORT)
                    .map_err(|source| ServiceError::BindVsock {
                        port: AGENT_PORT,
                        source,
                    })?;
            serve(listener, config)
        }
    }
}
