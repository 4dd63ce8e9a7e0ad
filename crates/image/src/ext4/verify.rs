//! Reading a batch's results back. debugfs exits 0 when a command fails,
//! and some failures leave plausible metadata behind (a `write` that runs
//! out of blocks has already set the file's full size), so every written
//! path's type, owner, mode and size are compared, and every file's content
//! is dumped back and compared byte for byte. A mismatch names the guest
//! path; debugfs's complaints come along.

use std::path::Path;

use super::debugfs::{Outcome, quote};
use super::plan::Plan;
use super::{Entry, Ext4Image};
use crate::error::DiskError;

pub(super) fn verify(
    image: &Ext4Image,
    plan: &Plan,
    entries: &[Entry],
    applied: &Outcome,
    scratch: &Path,
) -> Result<(), DiskError> {
    let paths: Vec<&str> = plan.expected.iter().map(|e| e.path.as_str()).collect();
    let mut dumps = Vec::new();
    let mut readback = Vec::new();
    for (i, expected) in plan.expected.iter().enumerate() {
        if expected.content_of.is_some() {
            let host = scratch.join(format!("readback-{i}"));
            dumps.push(format!("dump {} {}", expected.path, quote(&host)?));
            readback.push((i, host));
        }
    }
    let (found, check) = image.stat_batch(&paths, &dumps, scratch)?;

    let mismatch = |i: usize, found: String| {
        let expected = &plan.expected[i];
        DiskError::WriteMismatch {
            image: image.path().to_owned(),
            guest_path: expected.path.clone(),
            expected: expected.describe(),
            found,
            errors: applied.errors_joined(),
        }
    };
    for (i, (expected, found)) in plan.expected.iter().zip(&found).enumerate() {
        match found {
            Some(f) if expected.matches(f) => {}
            Some(f) => return Err(mismatch(i, f.describe())),
            None => return Err(mismatch(i, "nothing".to_owned())),
        }
    }
    for (i, host) in readback {
        let Some(Entry::File { content, .. }) = plan.expected[i].content_of.map(|e| &entries[e])
        else {
            unreachable!("read-backs are planned for file entries only")
        };
        match std::fs::read(&host) {
            Ok(back) if back == *content => {}
            Ok(back) => {
                let at = back
                    .iter()
                    .zip(content)
                    .position(|(a, b)| a != b)
                    .unwrap_or(back.len().min(content.len()));
                return Err(mismatch(
                    i,
                    format!(
                        "different content from byte {at} ({} bytes read back)",
                        back.len()
                    ),
                ));
            }
            Err(e) => {
                return Err(mismatch(
                    i,
                    format!("content that cannot be read back ({e})"),
                ));
            }
        }
    }
    // Everything reads back as asked, yet debugfs complained: something
    // happened that the plan did not foresee; do not trust the image.
    image.no_errors(&check)?;
    image.no_errors(applied)?;
    Ok(())
}
