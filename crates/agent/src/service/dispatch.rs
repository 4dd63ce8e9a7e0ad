//! One arm per method: run the handler, turn its typed error into the
//! protocol's error code.

use std::path::Path;

use super::config::ServiceConfig;
use super::exec_input::InputSource;
use super::{exec, exec_stream, health, identity};
use crate::procnet;
use crate::protocol::{Call, Empty, ErrorBody, ErrorCode, OutputFrame, Response};

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
    match call {
        Call::Health => Outcome::reply(match health::collect() {
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
                Ok(result) => Response::success(&result),
                Err(e) => failed(e),
            },
        }),
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
