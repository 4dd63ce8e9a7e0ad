//! The VM lifecycle as an explicit table. Every state change in the daemon goes
//! through [`VmState::apply`], and the resulting state is persisted before the
//! work it announces starts, so a crash leaves a state that reconcile can read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Created,
    Starting,
    Running,
    Stopping,
    Stopped,
    Error,
}

/// What can happen to a VM. User commands (`Start`, `Stop`, `Kill`, `Delete`)
/// and observations the daemon makes (`Booted`, `Halted`, `Fail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmAction {
    /// Launch the VMM.
    Start,
    /// The guest answered: boot finished.
    Booted,
    /// Ask the guest to power off.
    Stop,
    /// The VMM process is gone (clean poweroff, or found dead by reconcile).
    Halted,
    /// Signal the VMM without asking the guest.
    Kill,
    /// A stage failed; the reason is recorded with the VM.
    Fail,
    /// Remove the VM and everything it owns.
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    To(VmState),
    /// The record itself goes away.
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a VM that is {state}{hint}", hint = hint(*.state, *.action))]
pub struct IllegalTransition {
    pub state: VmState,
    pub action: VmAction,
}

fn hint(state: VmState, action: VmAction) -> &'static str {
    match (state, action) {
        (VmState::Running | VmState::Starting | VmState::Stopping, VmAction::Delete) => {
            "; stop or kill it first"
        }
        (VmState::Running, VmAction::Start) => "; it is already running",
        (VmState::Stopped | VmState::Created, VmAction::Stop | VmAction::Kill) => {
            "; it is not running"
        }
        _ => "",
    }
}

use Transition::{Removed, To};
use VmAction as A;
use VmState as S;

/// Every legal (state, action) pair and where it leads. Anything not listed is
/// refused with [`IllegalTransition`].
const TABLE: &[(VmState, VmAction, Transition)] = &[
    (S::Created, A::Start, To(S::Starting)),
    (S::Stopped, A::Start, To(S::Starting)),
    (S::Error, A::Start, To(S::Starting)),
    (S::Starting, A::Booted, To(S::Running)),
    (S::Running, A::Stop, To(S::Stopping)),
    (S::Starting, A::Halted, To(S::Stopped)),
    (S::Running, A::Halted, To(S::Stopped)),
    (S::Stopping, A::Halted, To(S::Stopped)),
    (S::Starting, A::Kill, To(S::Stopped)),
    (S::Running, A::Kill, To(S::Stopped)),
    (S::Stopping, A::Kill, To(S::Stopped)),
    (S::Created, A::Fail, To(S::Error)),
    (S::Starting, A::Fail, To(S::Error)),
    (S::Running, A::Fail, To(S::Error)),
    (S::Stopping, A::Fail, To(S::Error)),
    (S::Created, A::Delete, Removed),
    (S::Stopped, A::Delete, Removed),
    (S::Error, A::Delete, Removed),
];

impl VmState {
    pub const ALL: [VmState; 6] = [
        S::Created,
        S::Starting,
        S::Running,
        S::Stopping,
        S::Stopped,
        S::Error,
    ];

    pub fn apply(self, action: VmAction) -> Result<Transition, IllegalTransition> {
        TABLE
            .iter()
            .find(|(s, a, _)| *s == self && *a == action)
            .map(|(_, _, t)| *t)
            .ok_or(IllegalTransition {
                state: self,
                action,
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            S::Created => "created",
            S::Starting => "starting",
            S::Running => "running",
            S::Stopping => "stopping",
            S::Stopped => "stopped",
            S::Error => "error",
        }
    }

    /// A VMM process may exist for the VM in this state.
    pub fn may_have_vmm(self) -> bool {
        matches!(self, S::Starting | S::Running | S::Stopping)
    }
}

impl VmAction {
    pub const ALL: [VmAction; 7] = [
        A::Start,
        A::Booted,
        A::Stop,
        A::Halted,
        A::Kill,
        A::Fail,
        A::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            A::Start => "start",
            A::Booted => "mark booted",
            A::Stop => "stop",
            A::Halted => "mark halted",
            A::Kill => "kill",
            A::Fail => "mark failed",
            A::Delete => "delete",
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for VmAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown VM state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for VmState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VmState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole lifecycle, written out pair by pair. A change to the table
    /// must change this test too: that is the point.
    #[test]
    fn every_state_action_pair() {
        let x = None;
        let to = |s| Some(To(s));
        let gone = Some(Removed);
        // Columns: Start, Booted, Stop, Halted, Kill, Fail, Delete
        let expected: [(VmState, [Option<Transition>; 7]); 6] = [
            (
                S::Created,
                [to(S::Starting), x, x, x, x, to(S::Error), gone],
            ),
            (
                S::Starting,
                [
                    x,
                    to(S::Running),
                    x,
                    to(S::Stopped),
                    to(S::Stopped),
                    to(S::Error),
                    x,
                ],
            ),
            (
                S::Running,
                [
                    x,
                    x,
                    to(S::Stopping),
                    to(S::Stopped),
                    to(S::Stopped),
                    to(S::Error),
                    x,
                ],
            ),
            (
                S::Stopping,
                [x, x, x, to(S::Stopped), to(S::Stopped), to(S::Error), x],
            ),
            (S::Stopped, [to(S::Starting), x, x, x, x, x, gone]),
            (S::Error, [to(S::Starting), x, x, x, x, x, gone]),
        ];
        for (state, row) in expected {
            for (action, want) in VmAction::ALL.into_iter().zip(row) {
                let got = state.apply(action).ok();
                assert_eq!(got, want, "{state} + {action}");
            }
        }
    }

    #[test]
    fn refusal_explains() {
        let err = VmState::Running.apply(VmAction::Delete).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot delete a VM that is running; stop or kill it first"
        );
    }

    #[test]
    fn names_round_trip() {
        for s in VmState::ALL {
            assert_eq!(s.as_str().parse::<VmState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("Running".parse::<VmState>().is_err());
    }
}
