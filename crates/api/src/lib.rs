//! Wire protocol between `banger` and `bangerd`, and the domain vocabulary both
//! sides speak: VM names, lifecycle states and transitions, sizes.
//!
//! Nothing here does I/O; every type validates on construction so that a value
//! of the type is always a legal one.
#![forbid(unsafe_code)]

pub mod build_info;
pub mod model;
pub mod protocol;
