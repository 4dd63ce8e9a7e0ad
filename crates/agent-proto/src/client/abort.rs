//! Ending a call in flight from another thread: the caller no longer wants
//! the result (its own client went away).

use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{AgentClient, ClientError, Stage};

/// Aborts the call of the [`AgentClient`] it was made from
/// ([`AgentClient::aborter`]), from any thread, at any time.
#[derive(Debug)]
pub struct Aborter {
    stream: UnixStream,
    aborted: Arc<AtomicBool>,
}

impl Aborter {
    /// Shuts the connection down in both directions. The call in flight
    /// (or the next one) fails with [`ClientError::Aborted`]; the agent
    /// sees the host hang up and kills an `exec`'s command. Aborting twice,
    /// or after the call returned, does nothing more.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl AgentClient {
    /// A handle that ends this client's call from another thread.
    pub fn aborter(&self) -> Result<Aborter, ClientError> {
        let stream = self
            .stream
            .try_clone()
            .map_err(|e| self.io_error(Stage::SendingRequest, e))?;
        Ok(Aborter {
            stream,
            aborted: Arc::clone(&self.aborted),
        })
    }

    /// True once an [`Aborter`] ended the call: whatever failed then
    /// failed because of it.
    pub(super) fn was_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::path::PathBuf;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::protocol::ExecRequest;

    #[test]
    fn an_abort_ends_a_call_waiting_for_its_answer() {
        let (host, agent) = UnixStream::pair().unwrap();
        // An agent that takes the request and never answers.
        let silent = thread::spawn(move || {
            let mut request = String::new();
            BufReader::new(&agent).read_line(&mut request).unwrap();
            let mut rest = Vec::new();
            // Ends when the host shuts the connection down.
            let _ = std::io::Read::read_to_end(&mut &agent, &mut rest);
            rest.is_empty()
        });
        let client = AgentClient::over(host, PathBuf::from("/t.sock"), Duration::from_secs(30));
        let aborter = client.aborter().unwrap();
        let started = Instant::now();
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            aborter.abort();
        });
        let err = client.exec(ExecRequest::new(["sleep", "60"])).unwrap_err();
        assert!(matches!(err, ClientError::Aborted), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        stopper.join().unwrap();
        // The agent saw the hang-up, and nothing after the request.
        assert!(silent.join().unwrap());
    }
}
