//! The sha256 of a file, read in chunks: the recipe hash and the agent
//! initrd's stamp both name the agent binary by it.

use std::fs::File;
use std::io;
use std::path::Path;

use sha2::{Digest, Sha256};

/// sha256 (hex) of the content of `path`.
pub(crate) fn file_sha256(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}
