//! Tests of the freeze: what a frozen agent refuses, what it still serves,
//! and what thaws it.

use std::sync::Arc;

use super::*;
use crate::protocol::{
    ExecRequest, ExecResult, HealthResult, IdentityRequest, IdentityResult, ResponseError,
};
use crate::service::power::{PowerControl, PowerError};
use crate::service::test_support;

/// Powers nothing off, but says it could.
struct NoPower;

impl PowerControl for NoPower {
    fn power_off(&self) -> Result<(), PowerError> {
        Ok(())
    }
}

struct Agent {
    _dir: tempfile::TempDir,
    config: ServiceConfig,
}

impl Agent {
    fn new() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_support::config(dir.path());
        config.power = Arc::new(NoPower);
        Agent { _dir: dir, config }
    }

    fn call(&self, call: Call) -> Outcome {
        dispatch(call, &self.config, &mut |_| true, None)
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, call: Call) -> T {
        let response = self.call(call).response;
        response.into_result().unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(&self, call: Call) -> ErrorBody {
        match self.call(call).response.into_result::<serde_json::Value>() {
            Err(ResponseError::Agent(body)) => body,
            other => panic!("not refused: {other:?}"),
        }
    }

    fn health(&self) -> HealthResult {
        self.ok(Call::Health)
    }
}

fn exec_true() -> Call {
    Call::Exec(ExecRequest::new(["true"]))
}

/// A refresh that carries a new seed and clock.
fn refresh() -> IdentityRequest {
    IdentityRequest {
        entropy: Some(crate::base64::encode(&[1; 32])),
        realtime_ns: Some(1_767_225_600_000_000_000),
        ..IdentityRequest::default()
    }
}

fn assert_frozen_refusal(body: &ErrorBody) {
    assert_eq!(body.code, ErrorCode::Failed);
    assert!(body.message.starts_with(FROZEN_REFUSAL), "{}", body.message);
    assert!(
        body.message.contains("restored from a snapshot")
            && body.message.contains("a new RNG seed and clock"),
        "{}",
        body.message
    );
}

#[test]
fn a_frozen_agent_refuses_exec_and_ports_only() {
    let agent = Agent::new();
    assert!(!agent.health().frozen);
    let _: Empty = agent.ok(Call::Freeze);
    assert!(agent.config.is_frozen());
    assert_frozen_refusal(&agent.error(exec_true()));
    assert_frozen_refusal(&agent.error(Call::Ports));
    // Still served: health (which says so), identity, freeze, poweroff.
    assert!(agent.health().frozen);
    let _: IdentityResult = agent.ok(Call::Identity(IdentityRequest {
        hostname: Some("dev".into()),
        ..IdentityRequest::default()
    }));
    let _: Empty = agent.ok(Call::Freeze);
    let poweroff = agent.call(Call::Poweroff);
    assert!(poweroff.response.ok);
    assert_eq!(poweroff.after, Some(AfterReply::PowerOff));
    // A malformed exec is still refused for being frozen, before its
    // params are looked at.
    assert_frozen_refusal(&agent.error(Call::Exec(ExecRequest::new(Vec::<String>::new()))));
    assert!(agent.config.is_frozen());
}

#[test]
fn thaw_serves_everything_again() {
    let agent = Agent::new();
    let _: Empty = agent.ok(Call::Freeze);
    let _: Empty = agent.ok(Call::Thaw);
    assert!(!agent.health().frozen);
    let result: ExecResult = agent.ok(exec_true());
    assert_eq!(result.status, Some(0));
    let _: Vec<crate::protocol::ListeningPort> = agent.ok(Call::Ports);
    // Thawing an agent that is not frozen is no error.
    let _: Empty = agent.ok(Call::Thaw);
}

#[test]
fn an_identity_with_a_seed_and_a_clock_thaws() {
    let agent = Agent::new();
    let _: Empty = agent.ok(Call::Freeze);
    let _: IdentityResult = agent.ok(Call::Identity(refresh()));
    assert!(!agent.config.is_frozen());
    assert!(!agent.health().frozen);
    let result: ExecResult = agent.ok(exec_true());
    assert_eq!(result.status, Some(0));
}

#[test]
fn an_identity_without_both_or_that_fails_does_not_thaw() {
    let agent = Agent::new();
    let _: Empty = agent.ok(Call::Freeze);
    for partial in [
        IdentityRequest {
            entropy: None,
            ..refresh()
        },
        IdentityRequest {
            realtime_ns: None,
            ..refresh()
        },
    ] {
        let _: IdentityResult = agent.ok(Call::Identity(partial));
        assert!(agent.config.is_frozen());
    }
    // Malformed: bad_request, still frozen.
    let bad = agent.error(Call::Identity(IdentityRequest {
        entropy: Some(crate::base64::encode(&[1; 8])),
        ..refresh()
    }));
    assert_eq!(bad.code, ErrorCode::BadRequest);
    assert!(agent.config.is_frozen());
    // Valid but failing to apply (a file where /root/.ssh must be a
    // directory): failed, still frozen.
    std::fs::write(agent.config.fs_root.join("root"), "not a dir").unwrap();
    let failed = agent.error(Call::Identity(IdentityRequest {
        authorized_keys: Some("ssh-ed25519 AAAA".into()),
        ..refresh()
    }));
    assert_eq!(failed.code, ErrorCode::Failed);
    assert!(agent.config.is_frozen());
    assert_frozen_refusal(&agent.error(exec_true()));
}

#[test]
fn the_frozen_state_is_shared_with_whoever_built_the_config() {
    let agent = Agent::new();
    let handle = Arc::clone(&agent.config.frozen);
    let _: Empty = agent.ok(Call::Freeze);
    assert!(handle.load(std::sync::atomic::Ordering::SeqCst));
}
