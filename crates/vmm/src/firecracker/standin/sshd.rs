//! The stand-in guest's sshd, as far as banger looks at it: once the VM
//! starts, the guest address of its boot arguments (`banger.ip=`) answers
//! on port 22 with an SSH identification line, until the process exits.
//!
//! The stand-in boots no guest and owns no network device, so the address
//! is reachable only where the test made it local (e.g. `ip route add local
//! <subnet> dev lo` in its network namespace); where it is not, nothing
//! listens, as with a guest whose sshd never came up.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use banger_agent::boot_config::BootConfig;
use banger_agent::cmdline::Cmdline;

/// What the guest's OpenSSH would say first (RFC 4253 §4.2).
pub const BANNER: &[u8] = b"SSH-2.0-fc-standin\r\n";

/// Serves the banner on a thread for as long as the process lives.
pub fn serve(boot_args: &str) {
    let Some(addr) = guest_ssh(boot_args) else {
        return;
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fc-standin: the guest's sshd cannot listen on {addr}: {e}");
            return;
        }
    };
    eprintln!("fc-standin: the guest's sshd listens on {addr}");
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(BANNER);
        }
    });
}

/// Port 22 of the address `banger.ip=` gives the guest.
fn guest_ssh(boot_args: &str) -> Option<SocketAddr> {
    let config = BootConfig::from_cmdline(&Cmdline::parse(boot_args)).ok()?;
    Some(SocketAddr::from((config.net?.addr, 22)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_address_comes_from_banger_ip() {
        assert_eq!(
            guest_ssh(
                "console=ttyS0 banger.root=/dev/vda banger.ip=172.16.0.7/24 banger.gw=172.16.0.1"
            ),
            Some("172.16.0.7:22".parse().unwrap())
        );
        assert_eq!(guest_ssh("console=ttyS0"), None, "no network, no sshd");
        assert_eq!(guest_ssh("banger.ip=not-an-address"), None);
    }
}
