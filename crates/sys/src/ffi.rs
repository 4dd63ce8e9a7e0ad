//! The only `unsafe` code in banger: system calls that have no safe wrapper
//! in `rustix` or `nix`. Each block says why it is sound.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::ioctl::{NoArg, Opcode, ioctl, opcode};

/// `RNDRESEEDCRNG` from `linux/random.h`: `_IO('R', 0x07)`.
const RNDRESEEDCRNG: Opcode = opcode::none(b'R', 0x07);

/// Makes the kernel reseed its CRNG from the input pool now (needs
/// `CAP_SYS_ADMIN`), on an open `/dev/urandom` or `/dev/random`. Bytes
/// written to that device beforehand are in the pool, so the next random
/// bytes depend on them: what a restored VM needs, since its CRNG state is
/// its snapshot's, shared with every other copy.
pub fn reseed_crng(random_device: impl AsFd) -> std::io::Result<()> {
    // SAFETY: RNDRESEEDCRNG is an argument-less request (`_IO`), which
    // `NoArg` encodes with no pointer, so the kernel reads and writes no
    // memory of ours; the descriptor is borrowed for the duration of the
    // call only.
    unsafe { ioctl(random_device, NoArg::<RNDRESEEDCRNG>::new()) }.map_err(std::io::Error::from)
}
