//! One arm per method: run the handler, turn its typed error into the
//! protocol's error code. A frozen agent (`freeze` came before a snapshot,
//! and this guest may be one of its copies, with the parent's RNG state and
//! clock) refuses what runs or reveals the guest's programs, `exec` and
//! `ports`, until `thaw` or an `identity` that reseeded the RNG and stepped
//! the clock.

use std::path::Path;

use super::config::ServiceConfig;
use super::exec_input::InputSource;
use super::{exec, exec_stream, health, identity};
use crate::procnet;
use crate::protocol::{Call, Empty, ErrorBody, ErrorCode, FROZEN_REFUSAL, OutputFrame, Response};

/// Work to do after the response has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterReply {
    PowerOff,
}

/// A response and what follows it.
pub struct Outcome {
    pub response: Response,
    pub after: Option<AfterReply>,
}

impl Outcome {
    pub(super) fn reply(response: Response) -> Self {
        Outcome {
            response,
            after: None,
        }
    }
}

/// Runs `call`. A streaming `exec` writes its output frames with `frames`,
/// which returns false once the host is gone; an `exec` with
/// `stdin_stream` reads its input frames from `input`.
pub fn dispatch(
    call: Call,
    config: &ServiceConfig,
    frames: &mut dyn FnMut(&[u8]) -> bool,
    input: Option<InputSource>,
) -> Outcome {
    if matches!(call, Call::Exec(_) | Call::Ports) && config.is_frozen() {
        return Outcome::reply(frozen());
    }
    match call {
        Call::Health => Outcome::reply(match health::collect(config.is_frozen()) {
            Ok(result) => Response::success(&result),
            Err(e) => failed(e),
        }),
        Call::Ports => Outcome::reply(match procnet::listening_ports(Path::new("/proc/net")) {
            Ok(ports) => Response::success(&ports),
            Err(e) => failed(format!("cannot read /proc/net: {e}")),
        }),
        Call::Exec(request) => Outcome::reply(match exec::validate(request) {
            Err(e) => Response::failure(ErrorBody::new(ErrorCode::BadRequest, e.to_string())),
            Ok(spec) => {
                if let Some(barrier) = &config.boot_barrier {
                    barrier.wait();
                    // A freeze may have come while it waited.
                    if config.is_frozen() {
                        return Outcome::reply(frozen());
                    }
                }
                let ran = if spec.stream {
                    exec_stream::run_with_input(&spec, input, &mut |stream, data| {
                        frames(&OutputFrame::new(stream, data).encode())
                    })
                } else {
                    exec::run_with_input(&spec, input)
                };
                match ran {
                    Ok(result) => Response::success(&result),
                    Err(e) => failed(e),
                }
            }
        }),
        Call::Identity(request) => Outcome::reply(match identity::validate(&request) {
            Err(e) => Response::failure(ErrorBody::new(ErrorCode::BadRequest, e.to_string())),
            Ok(()) => match identity::apply(&request, config) {
                Ok(result) => {
                    if identity::thaws(&request) && config.is_frozen() {
                        config.set_frozen(false);
                        crate::info!(
                            "thawed: the RNG has a new seed and the clock the host's time"
                        );
                    }
                    Response::success(&result)
                }
                Err(e) => failed(e),
            },
        }),
        Call::Freeze => {
            config.set_frozen(true);
            crate::info!("frozen for a snapshot: exec and ports wait for the identity refresh");
            Outcome::reply(Response::success(&Empty {}))
        }
        Call::Thaw => {
            if config.is_frozen() {
                config.set_frozen(false);
                crate::info!("thawed by the host");
            }
            Outcome::reply(Response::success(&Empty {}))
        }
        Call::Poweroff => match config.power.available() {
            Ok(()) => Outcome {
                response: Response::success(&Empty {}),
                after: Some(AfterReply::PowerOff),
            },
            Err(e) => Outcome::reply(failed(e)),
        },
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    Response::failure(ErrorBody::new(ErrorCode::Failed, e.to_string()))
}

/// The answer of a frozen agent to `exec` and `ports`.
fn frozen() -> Response {
    failed(format!(
        "{FROZEN_REFUSAL}: the host sends `identity` with `entropy` and `realtime_ns` \
         (or `thaw` to the snapshot's own guest)"
    ))
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
