//! The transport: a Unix socket, one request per connection, newline-delimited
//! JSON. This layer authenticates the peer, parses, dispatches, and turns a
//! hang-up into cancellation. It knows nothing about what methods do.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use banger_api::protocol::{
    Envelope, ErrorCode, MAX_REQUEST_BYTES, Outcome, OutputChunk, PROTOCOL_VERSION, Progress,
    ProtocolError, Request, Response, validate_op_id,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::Authorizer;
use crate::context::RequestCtx;
use crate::dispatch::dispatch;
use crate::error::{StartupError, io_err};
use crate::lock::StateLock;
use crate::state::Daemon;

/// How long a client may take to send its request line.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Output chunks (at most 64 KiB each) waiting to be written to the client.
const OUTPUT_QUEUE: usize = 16;

/// Connections served at once; one beyond it is answered with an error and
/// closed on accept. Only root and the owner can connect, so this guards
/// against runaway clients (a script looping `banger` in the background), not
/// strangers. A connection holds a slot for its whole life — while its
/// request line arrives (at most 10 s and 1 MiB) and while its request runs,
/// a streamed `vm exec` or `vm logs -f`'s polls included — so 256 bounds the
/// request buffers at 256 MiB and the descriptors at a quarter of the common
/// 1024 soft limit, leaving room for VMs and the database, while staying far
/// above what one user's CLIs do in parallel.
const MAX_CONNECTIONS: usize = 256;

/// Binds the socket and serves until `shutdown` fires. The socket is created
/// under a umask that leaves it owner-only, inside a 0700 directory, then set
/// to 0600: no other local user can connect at any moment.
/// The caller holds the state directory's lock.
pub async fn serve(
    daemon: Daemon,
    _lock: &StateLock,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    let socket = daemon.paths.socket.clone();
    let listener = bind_private(&socket)?;
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "bangerd listening");

    let daemon = Arc::new(daemon);
    let auth = Authorizer::new(daemon.owner_uid);
    let connections = tokio_util::task::TaskTracker::new();
    // Taken without waiting and released when a connection's task ends (even
    // by panic), so neither accepting nor shutdown ever waits on a slot.
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Whether the last connection was refused: the first refusal of a burst
    // is a warning, the rest are debug lines.
    let mut refusing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                    Ok(slot) => {
                        refusing = false;
                        let (daemon, shutdown) = (daemon.clone(), shutdown.clone());
                        connections.spawn(async move {
                            handle_connection(daemon, auth, stream, shutdown).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        if refusing {
                            tracing::debug!(max = MAX_CONNECTIONS, "at the connection limit; refused a connection");
                        } else {
                            tracing::warn!(max = MAX_CONNECTIONS, "at the connection limit; refusing new connections until some finish");
                        }
                        refusing = true;
                        refuse_over_cap(stream, auth, daemon.owner_uid);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!("shutting down: cancelling in-flight requests");
    connections.close();
    connections.wait().await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Answers a connection beyond [`MAX_CONNECTIONS`] and closes it, without a
/// task and without waiting: the one short line goes straight into the new
/// socket's empty send buffer. If even that fails, the client just sees the
/// connection closed. Another user's connection gets `unauthorized`, as it
/// would below the cap.
fn refuse_over_cap(stream: UnixStream, auth: Authorizer, owner_uid: u32) {
    let err = match stream.peer_cred() {
        Ok(peer) if !auth.allows(peer.uid()) => unauthorized(peer.uid(), owner_uid),
        Ok(_) => ProtocolError::new(
            ErrorCode::OperationFailed,
            format!(
                "bangerd is serving {MAX_CONNECTIONS} connections already (its limit); retry when some finish"
            ),
        ),
        Err(_) => return,
    };
    let mut line =
        serde_json::to_vec(&error_response(mint_op_id(), err)).expect("responses always serialise");
    line.push(b'\n');
    // `into_std` keeps the socket non-blocking, so this write never waits.
    if let Ok(stream) = stream.into_std() {
        let _ = std::io::Write::write(&mut &stream, &line);
    }
}

fn unauthorized(peer_uid: u32, owner_uid: u32) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::Unauthorized,
        format!("uid {peer_uid} may not use this daemon: only root and uid {owner_uid} may"),
    )
}

fn bind_private(socket: &Path) -> Result<UnixListener, StartupError> {
    let dir = socket
        .parent()
        .expect("the socket path has a parent directory");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("restrict the permissions of", dir))?;
    // We hold the lock, so a socket file left here belongs to a dead daemon.
    match std::fs::remove_file(socket) {
        Ok(()) => tracing::info!(socket = %socket.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("remove the stale socket", socket)(e)),
    }
    let old = banger_sys::os::set_umask(0o177);
    let bound = UnixListener::bind(socket);
    banger_sys::os::set_umask(old);
    let listener = bound.map_err(io_err("bind", socket))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("set the permissions of", socket))?;
    Ok(listener)
}

async fn handle_connection(
    daemon: Arc<Daemon>,
    auth: Authorizer,
    stream: UnixStream,
    shutdown: CancellationToken,
) {
    let peer = match stream.peer_cred() {
        Ok(cred) => cred,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; dropping connection");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);

    if !auth.allows(peer.uid()) {
        tracing::warn!(uid = peer.uid(), pid = ?peer.pid(), "refused connection from another user");
        let err = unauthorized(peer.uid(), daemon.owner_uid);
        send(&mut write, &error_response(mint_op_id(), err)).await;
        return;
    }

    // A connection still waiting for its request line holds a slot; shutdown
    // closes it rather than waiting out its timeout.
    let read = tokio::select! {
        () = shutdown.cancelled() => return,
        read = tokio::time::timeout(REQUEST_READ_TIMEOUT, read_request(&mut reader)) => read,
    };
    let envelope = match read {
        Ok(Ok(Some(env))) => env,
        Ok(Ok(None)) => return, // connected and hung up without asking anything
        Ok(Err(err)) => {
            send(&mut write, &error_response(mint_op_id(), err)).await;
            return;
        }
        Err(_) => {
            let err = ProtocolError::new(
                ErrorCode::BadRequest,
                "no complete request line within 10 s",
            );
            send(&mut write, &error_response(mint_op_id(), err)).await;
            return;
        }
    };

    let op_id = match envelope.op_id.clone() {
        Some(id) => match validate_op_id(&id) {
            Ok(()) => id,
            Err(err) => {
                send(&mut write, &error_response(mint_op_id(), err)).await;
                return;
            }
        },
        None => mint_op_id(),
    };
    let span =
        tracing::info_span!("request", op_id = %op_id, method = %envelope.method, uid = peer.uid());
    async move {
        let request = match parse(envelope) {
            Ok(r) => r,
            Err(err) => {
                tracing::info!(code = %err.code, error = %err.message, "rejected request");
                send(&mut write, &error_response(op_id, err)).await;
                return;
            }
        };
        tracing::debug!("request received");
        let (progress, mut stages) = tokio::sync::mpsc::unbounded_channel();
        let (output, mut chunks) = tokio::sync::mpsc::channel(OUTPUT_QUEUE);
        let ctx = Arc::new(RequestCtx {
            op_id: op_id.clone(),
            cancel: shutdown.child_token(),
            progress,
            output,
        });
        let work = {
            let (daemon, ctx) = (daemon.clone(), ctx.clone());
            let op = ctx.op_id.clone();
            tokio::spawn(
                crate::context::OP_ID
                    .scope(op, async move { dispatch(&daemon, &ctx, request).await })
                    .in_current_span(),
            )
        };
        tokio::pin!(work);
        let joined = loop {
            tokio::select! {
                joined = &mut work => break joined,
                Some(stage) = stages.recv() => {
                    write_line(&mut write, &progress_response(&op_id, stage)).await;
                }
                Some(chunk) = chunks.recv() => {
                    write_line(&mut write, &output_response(&op_id, chunk)).await;
                }
                () = client_gone(&mut reader) => {
                    tracing::info!("client went away; cancelling the request");
                    ctx.cancel.cancel();
                    // A handler waiting for room in the output queue must
                    // not wait for a reader that is gone.
                    drop(chunks);
                    // Let the handler run its cleanup to the end; nobody is
                    // left to read the answer.
                    let _ = work.await;
                    return;
                }
            }
        };
        // Stages reported just before the end still go out, in order.
        while let Ok(stage) = stages.try_recv() {
            write_line(&mut write, &progress_response(&op_id, stage)).await;
        }
        while let Ok(chunk) = chunks.try_recv() {
            write_line(&mut write, &output_response(&op_id, chunk)).await;
        }
        let outcome = match joined {
            Ok(Ok(result)) => Outcome::Result(result),
            Ok(Err(err)) => {
                let err = err.to_protocol();
                tracing::info!(code = %err.code, error = %err.message, "request failed");
                Outcome::Error(err)
            }
            Err(join) => {
                tracing::error!(error = %join, "request handler panicked");
                Outcome::Error(ProtocolError::new(
                    ErrorCode::OperationFailed,
                    "internal error: the request handler crashed; see the daemon log",
                ))
            }
        };
        send(&mut write, &Response { op_id, outcome }).await;
        tracing::debug!("request done");
    }
    .instrument(span)
    .await;
}

fn parse(envelope: Envelope) -> Result<Request, ProtocolError> {
    if envelope.version != PROTOCOL_VERSION {
        return Err(ProtocolError::new(
            ErrorCode::BadVersion,
            format!(
                "protocol version {} is not supported (this daemon speaks {PROTOCOL_VERSION}); use the banger CLI of the same release",
                envelope.version
            ),
        ));
    }
    Request::parse(&envelope.method, envelope.params)
}

/// Reads the request line, refusing more than [`MAX_REQUEST_BYTES`].
async fn read_request(
    reader: &mut BufReader<OwnedReadHalf>,
) -> Result<Option<Envelope>, ProtocolError> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| {
            ProtocolError::new(
                ErrorCode::BadRequest,
                format!("cannot read the request: {e}"),
            )
        })?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        let why = if line.len() > MAX_REQUEST_BYTES {
            format!("request is larger than {MAX_REQUEST_BYTES} bytes")
        } else {
            "request must be one JSON object ended by a newline".to_owned()
        };
        return Err(ProtocolError::new(ErrorCode::BadRequest, why));
    }
    serde_json::from_slice(&line).map(Some).map_err(|e| {
        ProtocolError::new(
            ErrorCode::BadRequest,
            format!("request is not a valid envelope: {e}"),
        )
    })
}

/// Resolves when the client closes its end (or errors). Bytes sent after the
/// request line are ignored.
async fn client_gone(reader: &mut BufReader<OwnedReadHalf>) {
    let mut buf = [0u8; 512];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

fn mint_op_id() -> String {
    format!("op-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn error_response(op_id: String, err: ProtocolError) -> Response {
    Response {
        op_id,
        outcome: Outcome::Error(err),
    }
}

fn progress_response(op_id: &str, stage: String) -> Response {
    Response {
        op_id: op_id.to_owned(),
        outcome: Outcome::Progress(Progress { stage }),
    }
}

fn output_response(op_id: &str, chunk: OutputChunk) -> Response {
    Response {
        op_id: op_id.to_owned(),
        outcome: Outcome::Output(chunk),
    }
}

async fn write_line(write: &mut tokio::net::unix::OwnedWriteHalf, response: &Response) {
    let mut line = serde_json::to_vec(response).expect("responses always serialise");
    line.push(b'\n');
    if let Err(e) = write.write_all(&line).await {
        tracing::info!(error = %e, "could not send to the client; it is gone");
    }
}

/// Writes the final line and closes our side.
async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, response: &Response) {
    write_line(write, response).await;
    let _ = write.shutdown().await;
}
