//! The OS boundary of [`super::LocalHost`]: every program it starts goes
//! through a [`Runner`], so tests can script what the tools answer (this
//! machine may lack device-mapper, systemd-resolved, ...) and check the
//! exact argv sequence, including the unwinding after a failure.

use banger_sys::{Cmd, Output, ProcessError};

use crate::error::HostError;

/// Runs one command to completion.
pub trait Runner: Send + Sync {
    fn run(&self, cmd: &Cmd) -> Result<Output, ProcessError>;
}

/// The real thing: [`Cmd::run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, ProcessError> {
        cmd.run()
    }
}

/// Runs `cmd`, turning a failure into [`HostError::Command`] that says what
/// banger was doing and what usually fixes it.
pub(crate) fn run(
    runner: &dyn Runner,
    cmd: Cmd,
    action: impl FnOnce() -> String,
    hint: &'static str,
) -> Result<Output, HostError> {
    runner.run(&cmd).map_err(|source| HostError::Command {
        action: action(),
        hint,
        source,
    })
}

/// Whether a failed program said the object is not there. Used only where
/// "already gone" is success (teardown) and the tool has no quieter way to
/// ask; other failures stay failures.
pub(crate) fn says_missing(err: &ProcessError, needles: &[&str]) -> bool {
    match err {
        ProcessError::Failed { stderr, .. } => needles.iter().any(|n| stderr.contains(n)),
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod scripted {
    //! A scripted [`Runner`]: replies chosen by argv prefix, every argv
    //! recorded. Unscripted commands succeed with empty output.

    use std::sync::Mutex;

    use super::*;

    #[derive(Debug, Clone)]
    pub(crate) enum Reply {
        /// Exit 0 with this stdout.
        Out(String),
        /// Exit 1 with this stderr.
        Fail(String),
        /// The program is not installed.
        Missing,
    }

    struct Rule {
        prefix: String,
        reply: Reply,
        once: bool,
        used: bool,
    }

    #[derive(Default)]
    pub(crate) struct ScriptedRunner {
        rules: Mutex<Vec<Rule>>,
        log: Mutex<Vec<String>>,
    }

    impl ScriptedRunner {
        /// Every command starting with `prefix` gets `reply`.
        pub(crate) fn on(&self, prefix: &str, reply: Reply) -> &Self {
            self.add(prefix, reply, false)
        }

        /// The next command starting with `prefix` gets `reply`; rules are
        /// tried in the order they were added.
        pub(crate) fn once(&self, prefix: &str, reply: Reply) -> &Self {
            self.add(prefix, reply, true)
        }

        fn add(&self, prefix: &str, reply: Reply, once: bool) -> &Self {
            self.rules.lock().unwrap().push(Rule {
                prefix: prefix.to_owned(),
                reply,
                once,
                used: false,
            });
            self
        }

        /// Every argv run so far, in order.
        pub(crate) fn argv(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Runner for ScriptedRunner {
        fn run(&self, cmd: &Cmd) -> Result<Output, ProcessError> {
            let argv = cmd.argv();
            self.log.lock().unwrap().push(argv.clone());
            let mut rules = self.rules.lock().unwrap();
            let reply = rules
                .iter_mut()
                .find(|r| argv.starts_with(&r.prefix) && !(r.once && r.used))
                .map(|r| {
                    r.used = true;
                    r.reply.clone()
                })
                .unwrap_or(Reply::Out(String::new()));
            match reply {
                Reply::Out(stdout) => Ok(Output {
                    stdout: stdout.into_bytes(),
                    stderr: Vec::new(),
                }),
                Reply::Fail(stderr) => Err(ProcessError::Failed {
                    argv,
                    status: "exit status 1".to_owned(),
                    stderr,
                }),
                Reply::Missing => Err(ProcessError::NotFound {
                    program: argv.split(' ').next().unwrap_or_default().to_owned(),
                    argv,
                }),
            }
        }
    }
}
