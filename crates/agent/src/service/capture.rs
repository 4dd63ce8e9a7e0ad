//! Capturing a child's output with a cap.
//!
//! Each stream has a reader thread that keeps at most `cap` bytes and
//! drains the rest, so the child never blocks on a full pipe. The buffer is
//! shared rather than returned by the thread: a background process started
//! by the command can keep the pipe open long after the command exits, and
//! `exec` then answers with what it has instead of waiting for it.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What a reader has collected so far.
#[derive(Debug, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

/// A running capture.
pub struct Capture {
    shared: Arc<Mutex<Captured>>,
}

impl Capture {
    /// Starts a reader thread for `reader`; it sends on `done` at EOF.
    pub fn start<R: Read + Send + 'static>(
        mut reader: R,
        cap: usize,
        name: &str,
        done: Sender<()>,
    ) -> io::Result<Capture> {
        let shared = Arc::new(Mutex::new(Captured::default()));
        let sink = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("exec-{name}"))
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    let Ok(mut captured) = sink.lock() else { break };
                    let room = cap.saturating_sub(captured.bytes.len());
                    let keep = n.min(room);
                    captured.bytes.extend_from_slice(&buf[..keep]);
                    if keep < n {
                        captured.truncated = true;
                    }
                }
                let _ = done.send(());
            })?;
        Ok(Capture { shared })
    }

    /// Takes what was collected; later output is still drained but dropped.
    pub fn take(&self) -> Captured {
        match self.shared.lock() {
            Ok(mut captured) => std::mem::take(&mut *captured),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

/// Waits until `count` readers reached EOF or `grace` passed.
pub fn wait_for_eof(done: &Receiver<()>, count: usize, grace: Duration) {
    let deadline = Instant::now() + grace;
    for _ in 0..count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(remaining).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn keeps_up_to_the_cap_and_drains_the_rest() {
        let data = vec![b'x'; 300_000];
        let (tx, rx) = mpsc::channel();
        let capture = Capture::start(io::Cursor::new(data), 100_000, "t", tx).unwrap();
        wait_for_eof(&rx, 1, Duration::from_secs(5));
        let got = capture.take();
        assert_eq!(got.bytes.len(), 100_000);
        assert!(got.truncated);
    }

    #[test]
    fn output_under_the_cap_is_complete() {
        let (tx, rx) = mpsc::channel();
        let capture = Capture::start(io::Cursor::new(b"hello".to_vec()), 5, "t", tx).unwrap();
        wait_for_eof(&rx, 1, Duration::from_secs(5));
        let got = capture.take();
        assert_eq!(got.bytes, b"hello");
        assert!(!got.truncated);
    }
}
