//! Commands that act on several VMs (SPEC §3): one request per VM, all at
//! once (the protocol carries one request per connection, so each VM gets
//! its own connection and thread), reported in the order the VMs were given.

use std::collections::BTreeMap;
use std::sync::mpsc;

use crate::client::{Client, ClientError};
use crate::error::CliError;

/// Runs `work` for every reference concurrently and calls `report` with
/// each result in the order of `refs`, as soon as it and every earlier one
/// are done. `work` gets a progress sink that prefixes stage lines with the
/// reference when there are several, so interleaved lines stay readable.
pub fn in_order<T: Send>(
    client: &Client,
    refs: &[String],
    work: impl Fn(&Client, &str, &mut dyn FnMut(&str)) -> Result<T, ClientError> + Sync,
    mut report: impl FnMut(&str, Result<T, ClientError>),
) {
    let several = refs.len() > 1;
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for (i, reference) in refs.iter().enumerate() {
            let (tx, work) = (tx.clone(), &work);
            scope.spawn(move || {
                let mut progress = |stage: &str| {
                    let stage = banger_api::text::clean_guest_text(stage);
                    if several {
                        eprintln!("  {reference}: {stage}");
                    } else {
                        eprintln!("  {stage}");
                    }
                };
                let result = work(client, reference, &mut progress);
                // The receiver lives until every thread is done.
                let _ = tx.send((i, result));
            });
        }
        drop(tx);
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for (i, result) in rx {
            waiting.insert(i, result);
            while let Some(result) = waiting.remove(&next) {
                report(&refs[next], result);
                next += 1;
            }
        }
    });
}

/// Counts failures while reporting; the command fails if any VM did. A
/// single VM's error is returned as it is, so its exit code (2 for a bad
/// request) and message come through unchanged.
pub struct Tally {
    total: usize,
    failed: usize,
    only: Option<ClientError>,
}

impl Tally {
    pub fn new(total: usize) -> Tally {
        Tally {
            total,
            failed: 0,
            only: None,
        }
    }

    pub fn failed(&mut self, reference: &str, error: ClientError) {
        self.failed += 1;
        if self.total == 1 {
            self.only = Some(error);
        } else {
            eprintln!(
                "banger: {reference}: {}",
                crate::error_line::error_line(&error)
            );
        }
    }

    pub fn finish(self) -> Result<(), CliError> {
        match (self.only, self.failed) {
            (Some(e), _) => Err(e.into()),
            (None, 0) => Ok(()),
            (None, failed) => Err(CliError::Some {
                failed,
                total: self.total,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_the_order_given_whatever_finishes_first() {
        let client = Client::new("/nonexistent/bangerd.sock");
        let refs: Vec<String> = ["slow", "fast", "middle"].map(String::from).to_vec();
        let delay = |r: &str| match r {
            "slow" => 150,
            "middle" => 60,
            _ => 0,
        };
        let mut seen = Vec::new();
        in_order(
            &client,
            &refs,
            |_, r, _| {
                std::thread::sleep(std::time::Duration::from_millis(delay(r)));
                Ok(r.len())
            },
            |r, result| seen.push((r.to_owned(), result.unwrap())),
        );
        assert_eq!(
            seen,
            [("slow".into(), 4), ("fast".into(), 4), ("middle".into(), 6)]
        );
    }

    #[test]
    fn they_run_at_the_same_time() {
        let client = Client::new("/nonexistent/bangerd.sock");
        let refs: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        let started = std::time::Instant::now();
        in_order(
            &client,
            &refs,
            |_, _, _| {
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok(())
            },
            |_, _| {},
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(700));
    }

    #[test]
    fn one_failure_fails_the_command() {
        let err = || ClientError::BadResponse { reason: "x".into() };
        let mut t = Tally::new(3);
        t.failed("b", err());
        assert!(matches!(
            t.finish(),
            Err(CliError::Some {
                failed: 1,
                total: 3
            })
        ));
        let mut single = Tally::new(1);
        single.failed("a", err());
        assert!(matches!(single.finish(), Err(CliError::Client(_))));
        assert!(Tally::new(2).finish().is_ok());
    }
}
