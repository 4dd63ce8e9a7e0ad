//! `vm run --rm` cleans up after Ctrl-C too (SPEC §3): once the VM is up,
//! SIGINT, SIGTERM or SIGHUP delete it before the CLI exits. Whoever starts
//! the deletion first (the signal or the normal end of the run) does it;
//! signals that arrive while it runs are swallowed so it completes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// The exit status after an interrupt: 128 + SIGINT, as shells report it.
const INTERRUPTED: i32 = 130;

/// Deletes a VM on the first interrupt; [`RmGuard::claim`] hands the
/// deletion to the normal path instead.
pub struct RmGuard {
    claimed: Arc<AtomicBool>,
    handle: Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RmGuard {
    /// Starts listening. `delete` runs on the listening thread at the first
    /// signal unless the deletion was already claimed; the process then
    /// exits with 130.
    pub fn install(
        name: String,
        delete: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<RmGuard> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let handle = signals.handle();
        let claimed = Arc::new(AtomicBool::new(false));
        let mine = claimed.clone();
        let thread = std::thread::spawn(move || {
            let mut delete = Some(delete);
            for _ in signals.forever() {
                if mine.swap(true, Ordering::SeqCst) {
                    continue; // the deletion is under way
                }
                eprintln!("\nbanger: interrupted; deleting {name} (--rm)");
                if let Some(delete) = delete.take() {
                    delete();
                }
                std::process::exit(INTERRUPTED);
            }
        });
        Ok(RmGuard {
            claimed,
            handle,
            thread: Some(thread),
        })
    }

    /// Takes over the deletion; `false` if a signal already did (the
    /// process is about to exit). Signals from now on are swallowed until
    /// the guard is dropped.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::SeqCst)
    }
}

impl Drop for RmGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
