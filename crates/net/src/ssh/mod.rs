//! banger's side of SSH (SPEC §3 `ssh-config`/`vm ssh`, §5, §8): the user key
//! pair, per-VM host keys, the host keys pinned in banger's own known_hosts,
//! banger's own ssh_config (`Host *.vm`), the marked `Include` block in the
//! user's `~/.ssh/config`, and the argv `vm ssh` hands the terminal to.
//!
//! Trust model: banger generates every guest's host key itself and pins it
//! before the VM first boots, so there is no trust-on-first-use window. The
//! config makes OpenSSH check `*.vm` hosts only against banger's known_hosts
//! with `StrictHostKeyChecking yes`; a mismatch is a hard error, which
//! [`explain_ssh_failure`] turns into a message naming the likely cause.
//!
//! Every file is written atomically (temporary file, then rename) with its
//! final mode, and files banger shares with the user (`~/.ssh/config`, and
//! known_hosts lines banger did not write) are preserved byte for byte.

mod command;
mod config;
mod error;
mod fs;
mod include;
mod keys;
mod known_hosts;
mod paths;

pub use command::{explain_ssh_failure, ssh_argv, ssh_command};
pub use config::{render_ssh_config, write_ssh_config};
pub use error::SshError;
pub use include::{
    IncludeChange, IncludeStatus, include_status, install_include, uninstall_include,
    user_ssh_config,
};
pub use keys::{HostKey, PublicKey, PublicKeyError, ensure_user_key, generate_host_key};
pub use known_hosts::{pin_host, unpin_host};
pub use paths::SshPaths;

/// The domain every VM is reachable under: `<name>.vm`.
pub const VM_DOMAIN: &str = "vm";
