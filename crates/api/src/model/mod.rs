//! Domain values shared by every crate. Each type is validated when built, so
//! holding one means holding a legal value.

mod name;
mod size;
mod state;

pub use name::{NameError, VmName, generate_name};
pub use size::{ByteSize, SizeError};
pub use state::{IllegalTransition, Transition, UnknownState, VmAction, VmState};
